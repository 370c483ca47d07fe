import { describe, expect, it } from 'vitest';
import { renderMarkdown } from './markdown';

function dom(html: string): HTMLElement {
  const div = document.createElement('div');
  div.innerHTML = html;
  return div;
}

/** Everything that could run script or fetch something, anywhere in the tree. */
function dangers(root: HTMLElement): string[] {
  const found: string[] = [];
  for (const el of root.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    if (['script', 'iframe', 'object', 'embed', 'img', 'style', 'link', 'meta', 'form', 'input', 'svg', 'math', 'video', 'audio', 'base'].includes(tag)) {
      found.push(`<${tag}>`);
    }
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on') || name === 'style' || name === 'src' || name === 'srcset' || name === 'formaction') found.push(`${tag}[${name}]`);
      if (name === 'href' && !/^(https?:|mailto:)/i.test(attr.value)) found.push(`${tag}[href=${attr.value}]`);
    }
  }
  return found;
}

describe('renderMarkdown', () => {
  it('renders Markdown structure', () => {
    const root = dom(renderMarkdown('# Title\n\nSome **bold** and *em* text.\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |'));
    expect(root.querySelector('h1')?.textContent).toBe('Title');
    expect(root.querySelector('strong')?.textContent).toBe('bold');
    expect(root.querySelectorAll('li')).toHaveLength(2);
    expect(root.querySelector('table td')?.textContent).toBe('1');
  });

  it('highlights code blocks in known languages and escapes others', () => {
    const root = dom(renderMarkdown('```python\ndef f(x):\n    return "<b>"\n```\n\n```nosuchlang\n<i>raw</i>\n```'));
    const blocks = root.querySelectorAll('pre.code-block code');
    expect(blocks).toHaveLength(2);
    expect(blocks[0].classList.contains('language-python')).toBe(true);
    expect(blocks[0].querySelector('.hljs-keyword')?.textContent).toBe('def');
    expect(blocks[0].textContent).toContain('"<b>"');
    expect(blocks[1].querySelector('i')).toBeNull();
    expect(blocks[1].textContent).toBe('<i>raw</i>\n');
  });

  it('keeps safe links and drops unsafe ones', () => {
    const root = dom(
      renderMarkdown('[ok](https://example.org/a) [mail](mailto:a@b.c) [bad](javascript:alert(1)) [data](data:text/html,<b>x</b>) [vb](vbscript:x) <https://auto.example>'),
    );
    const hrefs = [...root.querySelectorAll('a')].map((a) => a.getAttribute('href'));
    expect(hrefs).toContain('https://example.org/a');
    expect(hrefs).toContain('mailto:a@b.c');
    expect(hrefs).toContain('https://auto.example');
    expect(hrefs.some((h) => h && /^(javascript|data|vbscript):/i.test(h))).toBe(false);
    expect(dangers(root)).toEqual([]);
  });

  it('never lets model output inject HTML or script', () => {
    const attacks = [
      '<script>window.__pwned = 1</script>',
      '<img src=x onerror="window.__pwned=1">',
      '<iframe src="https://evil.example"></iframe>',
      '<a href="javascript:alert(1)">click</a>',
      '<svg onload=alert(1)><circle/></svg>',
      '<style>body{display:none}</style>',
      '<div style="position:fixed;inset:0" onclick="x()">overlay</div>',
      '![tracker](https://evil.example/pixel.png)',
      '[x](JaVaScRiPt:alert(1))',
      '[x](  javascript:alert(1))',
      '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
      '<form action="https://evil.example"><input name=a></form>',
      '```html\n<script>alert(1)</script>\n```',
      '`<img src=x onerror=alert(1)>`',
      '<details open ontoggle=alert(1)>',
      '<base href="https://evil.example/">',
      '<meta http-equiv="refresh" content="0;url=https://evil.example">',
      '[a](https://ok.example "title\\" onmouseover=\\"alert(1)")',
    ];
    for (const attack of attacks) {
      const html = renderMarkdown(`before\n\n${attack}\n\nafter`);
      const root = dom(html);
      expect(dangers(root), attack).toEqual([]);
      expect(root.querySelector('script'), attack).toBeNull();
    }
    // Raw HTML shows up as text, so the user can still read what the model wrote.
    expect(dom(renderMarkdown('<script>x</script>')).textContent).toContain('<script>x</script>');
    expect((window as unknown as { __pwned?: number }).__pwned).toBeUndefined();
  });
});
