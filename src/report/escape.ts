/**
 * Escaping for everything the report puts into HTML: text and attribute values, JSON inside
 * `<script>` elements, and inlined third-party scripts.
 */

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for an HTML text node or a quoted attribute value (`& < > " '`). */
export function escapeHtml(text: string | number): string {
  return String(text).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/**
 * JSON for a `<script type="application/json">` element: `<`, `>`, `&` and the line separators
 * U+2028/U+2029 become `\uXXXX` escapes, so no value can close the element or open a comment;
 * `JSON.parse` of the element's text gives back the value.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Makes a JavaScript source safe to inline in a `<script>` element: every `</script` (any case)
 * becomes `<\/script`, and `<!--` becomes `<\x21--`, both of which mean the same inside JS string,
 * template and regex literals (the only places they can occur in valid code).
 */
export function inlineScript(source: string): string {
  return source.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\x21--');
}
