// Agents answer in markdown. It is rendered with marked and sanitised with
// DOMPurify, and HTML the agent writes is never markup: marked's HTML tokens
// are escaped into text before DOMPurify sees the result, which then removes
// anything else unsafe (javascript: links, event handlers). Images are not
// loaded either: an agent must not make the browser fetch a URL it chose.
import { Marked } from '/ui/vendor/marked.js';
import DOMPurify from '/ui/vendor/purify.js';

const escape = (s) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    // Block and inline HTML in the markdown: shown as the text it is.
    html: ({ text }) => escape(text),
    image: ({ text }) => escape(text ?? ''),
  },
});

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

const POLICY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ['img', 'style', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'svg', 'math'],
  FORBID_ATTR: ['style', 'class', 'id'],
};

/** Safe HTML for an answer in markdown. */
export function renderMarkdown(text) {
  return DOMPurify.sanitize(marked.parse(String(text ?? ''), { async: false }).trim(), POLICY);
}
