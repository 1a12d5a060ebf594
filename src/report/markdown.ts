/**
 * A small markdown-to-HTML converter for the `results.md` files the pipeline writes: headings,
 * paragraphs, `- ` lists and pipe tables, with `**bold**` and `` `code` `` inline. Every piece of
 * text is HTML-escaped first; nothing in the input can inject markup.
 */
import { escapeHtml } from './escape.ts';

function inline(text: string): string {
  return escapeHtml(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
}

function cells(line: string): string[] {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|')) s = s.slice(0, -1);
  return s.split('|').map((c) => c.trim());
}

const isSeparator = (line: string): boolean => /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(line);
const NUMERIC = /^[-+]?[\d,.]+%?$/;

/**
 * Converts markdown to HTML. Headings are shifted down by `headingOffset` levels (default 2, so
 * `#` becomes `<h3>`) to nest inside the report's sections.
 */
export function markdownToHtml(md: string, headingOffset = 2): string {
  const lines = md.replace(/\r\n?/g, '\n').split('\n');
  const out: string[] = [];
  let para: string[] = [];
  const flush = (): void => {
    if (para.length) out.push(`<p>${para.map(inline).join(' ')}</p>`);
    para = [];
  };
  for (let i = 0; i < lines.length; ) {
    const line = lines[i]!;
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      const level = Math.min(6, heading[1]!.length + headingOffset);
      out.push(`<h${level}>${inline(heading[2]!.trim())}</h${level}>`);
      i++;
    } else if (line.trim().startsWith('|')) {
      flush();
      const rows: string[] = [];
      while (i < lines.length && lines[i]!.trim().startsWith('|')) rows.push(lines[i++]!);
      const header = cells(rows[0]!);
      const body = rows.slice(1).filter((r) => !isSeparator(r)).map(cells);
      const td = (c: string): string => `<td${NUMERIC.test(c) ? ' class="num"' : ''}>${inline(c)}</td>`;
      out.push(
        `<table><thead><tr>${header.map((h) => `<th>${inline(h)}</th>`).join('')}</tr></thead>` +
          `<tbody>${body.map((r) => `<tr>${r.map(td).join('')}</tr>`).join('')}</tbody></table>`,
      );
    } else if (/^\s*[-*]\s+/.test(line)) {
      flush();
      const items: string[] = [];
      while (i < lines.length && /^\s*[-*]\s+/.test(lines[i]!)) items.push(lines[i++]!.replace(/^\s*[-*]\s+/, ''));
      out.push(`<ul>${items.map((it) => `<li>${inline(it)}</li>`).join('')}</ul>`);
    } else if (line.trim() === '') {
      flush();
      i++;
    } else {
      para.push(line.trim());
      i++;
    }
  }
  flush();
  return out.join('\n');
}
