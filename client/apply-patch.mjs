// Applies a unified diff (as `diff -u` writes it, paths a/... b/...) to the files under a folder,
// strictly: every context and removed line must match exactly where its hunk says, no fuzz, no
// offset; anything else is an error. Used by build.sh, so that the build needs no `patch`.
//   node apply-patch.mjs <file.patch> <folder>
import { readFileSync, writeFileSync } from "node:fs";
import { join, normalize, isAbsolute } from "node:path";

function fail(message) {
  process.stderr.write(`apply-patch: ${message}\n`);
  process.exit(1);
}

function parse(text) {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const files = [];
  let i = 0;
  while (i < lines.length) {
    if (!lines[i].startsWith("--- ")) {
      if (files.length > 0 && lines[i].trim() !== "") fail(`unexpected line ${i + 1}: ${lines[i]}`);
      i += 1; // the header text before the first file
      continue;
    }
    const plus = lines[i + 1] ?? "";
    if (!plus.startsWith("+++ b/")) fail(`line ${i + 2}: expected "+++ b/<path>"`);
    const path = plus.slice(6).split("\t")[0];
    if (isAbsolute(path) || normalize(path).startsWith("..")) fail(`unsafe path ${path}`);
    const file = { path, hunks: [] };
    files.push(file);
    i += 2;
    while (i < lines.length && lines[i].startsWith("@@ ")) {
      const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(lines[i]);
      if (m === null) fail(`line ${i + 1}: bad hunk header`);
      const hunk = { oldStart: Number(m[1]), oldCount: Number(m[2] ?? 1), newCount: Number(m[4] ?? 1), old: [], new: [] };
      i += 1;
      while (i < lines.length && (hunk.old.length < hunk.oldCount || hunk.new.length < hunk.newCount)) {
        const [tag, body] = [lines[i][0], lines[i].slice(1)];
        if (tag !== " " && tag !== "-" && tag !== "+") fail(`line ${i + 1}: not a hunk line (a "\\ No newline" marker is not supported)`);
        if (tag !== "+") hunk.old.push(body);
        if (tag !== "-") hunk.new.push(body);
        i += 1;
      }
      if (hunk.old.length !== hunk.oldCount || hunk.new.length !== hunk.newCount) {
        fail(`${path}: hunk at -${hunk.oldStart} has ${hunk.old.length}/${hunk.new.length} lines, header says ${hunk.oldCount}/${hunk.newCount}`);
      }
      file.hunks.push(hunk);
    }
    if (file.hunks.length === 0) fail(`${path}: no hunks`);
  }
  if (files.length === 0) fail("no file in the patch");
  return files;
}

const [patchFile, folder] = process.argv.slice(2);
if (!patchFile || !folder) fail("usage: node apply-patch.mjs <file.patch> <folder>");
for (const file of parse(readFileSync(patchFile, "utf8"))) {
  const target = join(folder, file.path);
  const text = readFileSync(target, "utf8");
  // The file's last line may lack a newline (the hunks never reach past the last full line).
  const source = text.split("\n");
  const out = [];
  let cursor = 0; // index into source of the next line not yet copied
  for (const hunk of file.hunks) {
    const start = hunk.oldStart - 1;
    if (start < cursor) fail(`${file.path}: hunks overlap or are out of order at line ${hunk.oldStart}`);
    out.push(...source.slice(cursor, start));
    hunk.old.forEach((line, k) => {
      if (source[start + k] !== line) fail(`${file.path}:${start + k + 1}: does not match the patch`);
    });
    out.push(...hunk.new);
    cursor = start + hunk.old.length;
  }
  out.push(...source.slice(cursor));
  writeFileSync(target, out.join("\n"));
}
