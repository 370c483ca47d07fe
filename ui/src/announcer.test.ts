import { describe, expect, it } from 'vitest';
import { ReplyAnnouncer, speakable } from './announcer';

describe('ReplyAnnouncer', () => {
  it('says whole sentences as they complete and the rest at the end', () => {
    const said: string[] = [];
    const a = new ReplyAnnouncer((s) => said.push(s));
    for (const piece of ['The cap', 'ital of France', ' is Paris. It is', ' large', '. And old']) a.push(piece);
    expect(said).toEqual(['The capital of France is Paris.', 'It is large.']);
    a.flush();
    expect(said).toEqual(['The capital of France is Paris.', 'It is large.', 'And old']);
  });

  it('handles Chinese punctuation and strips Markdown marks', () => {
    const said: string[] = [];
    const a = new ReplyAnnouncer((s) => said.push(s));
    a.push('法国的首都是**巴黎**。');
    expect(said).toEqual(['法国的首都是巴黎。']);
    expect(speakable('## Title\n```python\nprint(1)\n```\n> quoted `code`')).toBe('Title print(1) quoted code');
  });
});
