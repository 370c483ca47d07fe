/**
 * What screen readers hear while a reply streams. Text arrives a few tokens at a time; reading
 * each piece would be noise, so whole sentences (or lines) are passed to an aria-live region
 * as they complete, and the rest when the reply ends.
 */
const SENTENCE_END = /[.!?。！？:：;；\n]/;

/** Markdown punctuation a listener should not hear (fences, emphasis, headings, quotes). */
export function speakable(text: string): string {
  return text
    .replace(/^\s*```.*$/gm, '')
    .replace(/[*_`~]+/g, '')
    .replace(/^\s{0,3}(?:#{1,6}|>|[-+] )\s*/gm, '')
    .replace(/\s+/g, ' ')
    .trim();
}

export class ReplyAnnouncer {
  private pending = '';
  constructor(private readonly say: (text: string) => void) {}

  /** Adds streamed text; says every sentence it completes. */
  push(text: string): void {
    this.pending += text;
    let cut = -1;
    for (let i = this.pending.length - 1; i >= 0; i--) {
      if (SENTENCE_END.test(this.pending[i])) {
        cut = i;
        break;
      }
    }
    if (cut < 0) return;
    const ready = speakable(this.pending.slice(0, cut + 1));
    this.pending = this.pending.slice(cut + 1);
    if (ready) this.say(ready);
  }

  /** Says whatever is left (the reply ended). */
  flush(): void {
    const rest = speakable(this.pending);
    this.pending = '';
    if (rest) this.say(rest);
  }
}
