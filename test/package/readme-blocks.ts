/**
 * The README's runnable examples: each ```ts fenced block right after a `<!-- run -->` line.
 */
export function readmeRunBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  const re = /^<!-- run -->\s*\n```ts\n([\s\S]*?)^```/gm;
  for (const m of markdown.matchAll(re)) blocks.push(m[1]!);
  return blocks;
}
