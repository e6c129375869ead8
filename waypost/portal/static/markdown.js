// The small Markdown subset of a destination type's `instructions.md` (headings, paragraphs,
// lists, tables, fenced code, inline code, bold, links) rendered to DOM nodes. Text is never
// parsed as HTML, and links keep only http(s) targets.

import { h } from "./dom.js";

const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*)|\[([^\]]+)\]\(([^)\s]+)\)/g;

function inline(text) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    out.push(text.slice(last, match.index));
    if (match[1]) out.push(h("code", {}, match[1].slice(1, -1)));
    else if (match[2]) out.push(h("strong", {}, match[2].slice(2, -2)));
    else if (/^https?:\/\//i.test(match[4])) out.push(h("a", { href: match[4], rel: "noopener noreferrer", target: "_blank" }, match[3]));
    else out.push(match[3]);
    last = match.index + match[0].length;
  }
  out.push(text.slice(last));
  return out;
}

const cells = (line) => line.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());

/** Markdown text → an array of block elements; headings start at `level`. */
export function renderMarkdown(text, level = 3) {
  const lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
    } else if (line.startsWith("```")) {
      const code = [];
      for (i += 1; i < lines.length && !lines[i].startsWith("```"); i += 1) code.push(lines[i]);
      i += 1;
      blocks.push(h("pre", { class: "code-block", tabindex: "0" }, h("code", {}, code.join("\n"))));
    } else if (/^#{1,6}\s/.test(line)) {
      const depth = line.match(/^#+/)[0].length;
      blocks.push(h(`h${Math.min(6, level + depth - 1)}`, { class: "guide__heading" }, inline(line.replace(/^#+\s*/, ""))));
      i += 1;
    } else if (line.trim().startsWith("|") && i + 1 < lines.length && /^\s*\|?[\s:|-]+\|?\s*$/.test(lines[i + 1])) {
      const head = cells(line);
      const body = [];
      for (i += 2; i < lines.length && lines[i].trim().startsWith("|"); i += 1) body.push(cells(lines[i]));
      blocks.push(h("div", { class: "guide__table" }, h("table", { class: "table" },
        h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, inline(c))))),
        h("tbody", {}, body.map((row) => h("tr", {}, row.map((c) => h("td", {}, inline(c)))))))));
    } else if (/^\s*([-*]|\d+\.)\s/.test(line)) {
      const ordered = /^\s*\d+\./.test(line);
      const items = [];
      while (i < lines.length && lines[i].trim()) {
        if (/^\s*([-*]|\d+\.)\s/.test(lines[i])) items.push(lines[i].replace(/^\s*([-*]|\d+\.)\s+/, ""));
        else items[items.length - 1] += ` ${lines[i].trim()}`; // a wrapped item continues
        i += 1;
      }
      blocks.push(h(ordered ? "ol" : "ul", {}, items.map((item) => h("li", {}, inline(item)))));
    } else {
      const para = [line.trim()]; // taken whatever it starts with, so the loop always advances
      i += 1;
      while (i < lines.length && lines[i].trim() && !/^(#{1,6}\s|```|\s*\||\s*([-*]|\d+\.)\s)/.test(lines[i])) {
        para.push(lines[i].trim());
        i += 1;
      }
      blocks.push(h("p", {}, inline(para.join(" "))));
    }
  }
  return blocks;
}
