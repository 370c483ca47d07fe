/**
 * Model output as HTML: Markdown (CommonMark + tables + autolinks) with highlighted code blocks,
 * and never anything else. Raw HTML in the text is shown as text (markdown-it with html off),
 * images are not rendered (no remote content), and the result goes through DOMPurify with an
 * allow-list of tags and attributes and only http(s)/mailto links. Callers may put the returned
 * string into innerHTML.
 */
import DOMPurify from 'dompurify';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import markdownLang from 'highlight.js/lib/languages/markdown';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import MarkdownIt from 'markdown-it';

const languages = {
  bash, c, cpp, css, go, java, javascript, json, markdown: markdownLang, python, rust, sql,
  typescript, xml, yaml,
};
for (const [name, def] of Object.entries(languages)) hljs.registerLanguage(name, def);
hljs.registerAliases(['sh', 'shell', 'zsh'], { languageName: 'bash' });
hljs.registerAliases(['js', 'jsx', 'mjs'], { languageName: 'javascript' });
hljs.registerAliases(['ts', 'tsx'], { languageName: 'typescript' });
hljs.registerAliases(['py'], { languageName: 'python' });
hljs.registerAliases(['rs'], { languageName: 'rust' });
hljs.registerAliases(['html', 'svg'], { languageName: 'xml' });
hljs.registerAliases(['yml'], { languageName: 'yaml' });
hljs.registerAliases(['c++', 'hpp', 'cc'], { languageName: 'cpp' });

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

const md: MarkdownIt = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: false,
  highlight(code, info) {
    const lang = (info.trim().split(/\s+/)[0] ?? '').toLowerCase();
    const known = lang && hljs.getLanguage(lang);
    const body = known ? hljs.highlight(code, { language: lang, ignoreIllegals: true }).value : escapeHtml(code);
    const cls = known ? ` language-${escapeHtml(lang)}` : '';
    return `<pre class="code-block"><code class="hljs${cls}">${body}</code></pre>`;
  },
});
md.disable('image');

const ALLOWED_TAGS = [
  'p', 'br', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'strong', 'em', 's', 'del', 'code', 'pre',
  'blockquote', 'ul', 'ol', 'li', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'span',
];
const ALLOWED_ATTR = ['href', 'class', 'start', 'title'];
const SAFE_URL = /^(?:https?:|mailto:)/i;

const purifier = DOMPurify();
purifier.addHook('uponSanitizeAttribute', (_node, data) => {
  if (data.attrName === 'href' && !SAFE_URL.test(data.attrValue.trim())) data.keepAttr = false;
  // Only highlight.js's own classes survive (hljs-*, language-*, code-block).
  if (data.attrName === 'class' && !/^(?:(?:hljs|hljs-[\w-]+|language-[\w+#-]+|code-block)\s*)+$/.test(data.attrValue)) {
    data.keepAttr = false;
  }
});

export function sanitize(html: string): string {
  return purifier.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOWED_URI_REGEXP: SAFE_URL,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_TRUSTED_TYPE: false,
  }) as string;
}

export function renderMarkdown(text: string): string {
  return sanitize(md.render(text));
}
