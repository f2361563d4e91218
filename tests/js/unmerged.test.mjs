// node --test tests/js/unmerged.test.mjs — the unmerged_leaves check a joiner runs on the ratchet
// tree (RFC 9420 §12.4.3.1) in the vendored ts-mls bundle, which client/build.sh patches
// (client/patches/ts-mls+1.6.4.patch, change 2). The RFC rule: each entry L of a non-blank
// parent node P's unmerged_leaves is a non-blank leaf below P, and every non-blank node strictly
// between L and P lists L too. ts-mls 1.6.4 instead demanded equal lists along L's whole direct
// path (refusing valid trees), let a blank or non-descendant leaf pass, and never returned on an
// index beyond the tree.
//  - a real meeting's history through mls.js: a removal, one commit adding two members into the
//    blanks, then a later joiner: every member, the later joiner included, derives the same
//    epoch secrets; unpatched ts-mls 1.6.4 (client/node_modules/ts-mls) refuses that Welcome;
//  - crafted trees (an index beyond the tree, up to 2^32 - 1; a blank unmerged leaf; a leaf not
//    below the node listing it; an intermediate node not listing it) are refused with a
//    ValidationError, each join in a worker thread with a deadline so that a hang fails the test.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

import { CIPHER_SUITE, MlsMember, toBase64Url } from "../../src/incamera/web/e2ee/mls.js";
import * as M from "../../src/incamera/web/vendor/ts-mls.js";

import { bareKeyPackage, decodeTree, hex, isParent } from "./tree-support.mjs";

const ROOT = new URL("../../", import.meta.url);
const BUNDLE = new URL("src/incamera/web/vendor/ts-mls.js", ROOT);
/** ts-mls 1.6.4 exactly as published (build.sh patches a copy, never node_modules itself). */
const UPSTREAM = new URL("client/node_modules/ts-mls/dist/src/", ROOT);
const HAVE_UPSTREAM = existsSync(fileURLToPath(new URL("index.js", UPSTREAM)));
/** A join that has not answered by then counts as a hang (a normal one takes well under 1 s). */
const DEADLINE_MS = 20_000;

const cs = await M.getCiphersuiteImpl(M.getCiphersuiteFromName(CIPHER_SUITE));
const acceptAll = { validateCredential: async () => true };

/** The direct path of leaf `leaf`: node indices, bottom up, the root last (a full tree). */
function pathOf(tree, leaf) {
  const rootIndex = (tree.length - 1) / 2;
  const path = [];
  let x = 2 * leaf;
  while (x !== rootIndex) {
    let k = 0;
    while ((x >> k) & 1) k += 1; // x's level
    x = ((x >> (k + 1)) & 1) === 0 ? x + (1 << k) : x - (1 << k);
    path.push(x);
  }
  return path;
}

/**
 * A meeting's group through mls.js, as the server drives it: 8 members (leaves 0-7); `a` (leaf
 * 0) refreshes its path (parent nodes 1, 3, 7); `a` removes leaves 1 and 5 (its new path: nodes
 * 3 and 7; node 1, above the blank leaf 1, stays blank); the member at leaf 4 adds `x` and `y`
 * in one commit without an update path (they fill the blanks at leaves 1 and 5: node 3 lists
 * [x], node 7 lists [x, y]); the member at leaf 6 then adds `z` (an MlsMember) and `raw` (a bare
 * key package, to join with either implementation) at leaves 8 and 9 (a tree of 16 leaves).
 */
async function buildScenario() {
  const roster = new Map();
  let serial = 0;
  const member = async () => {
    serial += 1;
    const id = `p${serial}`;
    const name = `Participant ${serial}`;
    const created = await MlsMember.create({ id, name, roster: (who) => roster.get(who) });
    roster.set(id, { name, deviceKey: toBase64Url(created.deviceKey) });
    return created;
  };
  const a = await member();
  await a.createGroup(crypto.getRandomValues(new Uint8Array(16)));
  let members = [a];
  const step = async (committer, args) => {
    const out = await committer.commit(args);
    await committer.confirmCommit();
    for (const other of members) if (other !== committer) await other.processCommit(out.commit);
    members = members.filter((m) => !m.removed);
    return out;
  };
  const join = async (out, joiners) => {
    for (const joiner of joiners) {
      await joiner.joinFromWelcome(out.welcome, out.ratchetTree);
      members.push(joiner);
    }
  };
  const seven = [];
  for (let i = 0; i < 7; i++) seven.push(await member());
  await join(await step(a, { adds: seven.map((m) => m.keyPackageBytes) }), seven);
  await step(a, { update: true });
  await step(a, { removeLeaves: [1, 5] });
  const at = (leaf) => members.find((m) => m.leafIndex === leaf);
  const x = await member();
  const y = await member();
  const pair = await step(at(4), { adds: [x.keyPackageBytes, y.keyPackageBytes] });
  await join(pair, [x, y]);

  const z = await member();
  const { raw, rawBytes } = await bareKeyPackage(cs, roster);
  const last = await step(at(6), { adds: [z.keyPackageBytes, rawBytes] });
  return { a, x, y, z, raw, pair, last, members };
}

let scenarioPromise = null;
const scenario = () => (scenarioPromise ??= buildScenario());

/** Joins `raw` with `lib` (the bundle or unpatched ts-mls) from the scenario's last Welcome. */
async function joinRaw(lib, config, treeBytes) {
  const { last, raw } = await scenario();
  const suite = await lib.getCiphersuiteImpl(lib.getCiphersuiteFromName(CIPHER_SUITE));
  const [message] = M.decodeMlsMessage(last.welcome, 0);
  const state = await lib.joinGroup(
    message.welcome,
    raw.publicPackage,
    structuredClone(raw.privatePackage),
    M.emptyPskIndex,
    suite,
    decodeTree(treeBytes),
    undefined,
    { ...config, authService: acceptAll },
  );
  return { epoch: String(state.groupContext.epoch), treeHash: hex(state.groupContext.treeHash) };
}

test("the scenario's tree: an upper node lists [x, y], a node below it on x's path only [x]", async () => {
  const { last, x, y } = await scenario();
  const tree = decodeTree(last.ratchetTree);
  const [lx, ly] = [x.leafIndex, y.leafIndex];
  assert.deepEqual([lx, ly], [1, 5], "x and y refilled the blanks of the removed members");
  const listed = pathOf(tree, lx)
    .filter((i) => isParent(tree[i]))
    .map((i) => [i, tree[i].parent.unmergedLeaves]);
  // The non-blank nodes on x's path, bottom up: node 3 lists x only, node 7 above it x and y.
  assert.deepEqual(listed, [
    [3, [lx]],
    [7, [lx, ly]],
  ]);
});

test("a later joiner's Welcome is accepted and everyone derives the same epoch secrets", async () => {
  const { a, x, y, z, last, members } = await scenario();
  await z.joinFromWelcome(last.welcome, last.ratchetTree);
  const expected = hex(await a.exportSframeEpochSecret());
  for (const m of [...members, z]) {
    assert.equal(m.epoch, a.epoch);
    assert.equal(hex(await m.exportSframeEpochSecret()), expected, `member at leaf ${m.leafIndex}`);
    assert.equal(m.securityCode(), a.securityCode());
  }
  assert.ok(members.includes(x) && members.includes(y));
  assert.equal(members.length, 8, "8 members, less the 2 removed, plus x and y (z joined last)");
});

test("unpatched ts-mls 1.6.4 refuses the later joiner's Welcome; the bundle joins the same key package", async (t) => {
  const { last } = await scenario();
  const patched = await joinRaw(M, M.defaultClientConfig, last.ratchetTree);
  assert.match(patched.epoch, /^\d+$/);
  if (!HAVE_UPSTREAM) {
    t.skip("client/node_modules/ts-mls is not installed (make js-deps)");
    return;
  }
  const upstream = await import(new URL("index.js", UPSTREAM).href);
  const { defaultClientConfig } = await import(new URL("clientConfig.js", UPSTREAM).href);
  await assert.rejects(joinRaw(upstream, defaultClientConfig, last.ratchetTree), (error) => {
    assert.equal(error.name, "ValidationError");
    assert.match(error.message, /non-blank intermediate node must list leaf node in its unmerged_leaves/);
    return true;
  });
});

// -- crafted trees, each joined in a worker thread -------------------------------------------------

const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
(async () => {
  const M = await import(workerData.library);
  const { defaultClientConfig } = await import(workerData.config);
  const cs = await M.getCiphersuiteImpl(M.getCiphersuiteFromName(workerData.suite));
  const welcome = workerData.welcome;
  try {
    const state = await M.joinGroup(welcome, workerData.publicPackage, workerData.privatePackage,
      M.emptyPskIndex, cs, workerData.tree, undefined,
      { ...defaultClientConfig, authService: { validateCredential: async () => true } });
    parentPort.postMessage({ outcome: "ok epoch " + state.groupContext.epoch });
  } catch (error) {
    parentPort.postMessage({ outcome: "error " + error?.name + ": " + error?.message });
  }
})();
`;

/**
 * The outcome of joining `raw` with `tree` in a worker (library: the bundle unless given), or
 * "hang" when the worker has not answered by the deadline or died (e.g. out of memory).
 */
async function joinInWorker(tree, { library = BUNDLE.href, config = BUNDLE.href, deadline = DEADLINE_MS } = {}) {
  const { last, raw } = await scenario();
  const [message] = M.decodeMlsMessage(last.welcome, 0);
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: {
      library,
      config,
      suite: CIPHER_SUITE,
      welcome: message.welcome,
      publicPackage: raw.publicPackage,
      privatePackage: raw.privatePackage,
      tree,
    },
    resourceLimits: { maxOldGenerationSizeMb: 256 },
  });
  let timer;
  try {
    return await new Promise((resolve) => {
      timer = setTimeout(() => resolve(`hang (no answer within ${deadline} ms)`), deadline);
      worker.once("message", (answer) => resolve(answer.outcome));
      worker.once("error", (error) => resolve(`hang (worker died: ${error?.code ?? error})`));
    });
  } finally {
    clearTimeout(timer);
    await worker.terminate();
  }
}

/** The scenario's last tree after `tamper(tree)`, encoded and decoded as on the wire. */
async function crafted(tamper) {
  const { last } = await scenario();
  const tree = decodeTree(last.ratchetTree);
  tamper(tree);
  return decodeTree(M.encodeRatchetTree(tree));
}

const addTo = (node, leaf) => (tree) => {
  assert.ok(isParent(tree[node]), `node ${node} is a non-blank parent node`);
  tree[node].parent.unmergedLeaves = [...tree[node].parent.unmergedLeaves, leaf];
};

const CASES = [
  ["index = the leaf count (16)", addTo(7, 16), /Unmerged leaf index is outside the tree/],
  ["index 2^31", addTo(3, 2 ** 31), /Unmerged leaf index is outside the tree/],
  ["index 2^32 - 1", addTo(7, 2 ** 32 - 1), /Unmerged leaf index is outside the tree/],
  [
    "a blank leaf (x's leaf blanked, still listed)",
    (tree) => (tree[2] = undefined),
    /Unmerged leaf did not represent a non-blank descendant leaf node/,
  ],
  [
    "a blank leaf listed by a node above it",
    (tree) => {
      tree[4] = undefined; // leaf 2, under node 3
      addTo(3, 2)(tree);
    },
    /Unmerged leaf did not represent a non-blank descendant leaf node/,
  ],
  ["a leaf in the other half (leaf 5 listed by node 3)", addTo(3, 5), /Unmerged leaf did not represent a non-blank/],
  ["a leaf beyond the node's subtree (leaf 8 listed by node 7)", addTo(7, 8), /Unmerged leaf did not represent a non-blank/],
  [
    "an intermediate node that does not list the leaf (x dropped from node 3, node 7 lists it)",
    (tree) => (tree[3].parent.unmergedLeaves = tree[3].parent.unmergedLeaves.filter((l) => l !== 1)),
    /non-blank intermediate node must list leaf node in its unmerged_leaves/,
  ],
];

test("the worker harness joins with the untampered tree", async () => {
  const outcome = await joinInWorker(await crafted(() => {}));
  assert.match(outcome, /^ok epoch \d+$/, outcome);
});

for (const [label, tamper, reason] of CASES) {
  test(`crafted tree refused promptly with a ValidationError: ${label}`, async () => {
    const started = performance.now();
    const outcome = await joinInWorker(await crafted(tamper));
    assert.match(outcome, /^error ValidationError: /, outcome);
    assert.match(outcome, reason, outcome);
    assert.ok(performance.now() - started < DEADLINE_MS, "answered before the deadline");
  });
}

test("unpatched ts-mls 1.6.4 does not return on an unmerged leaf index beyond the tree", async (t) => {
  if (!HAVE_UPSTREAM) {
    t.skip("client/node_modules/ts-mls is not installed (make js-deps)");
    return;
  }
  // Only to show what the patch is for: 1.6.4 grows an array without end (the worker's heap is
  // capped at 256 MB, so it dies soon; otherwise the deadline ends it). The index goes first in
  // node 3's list: 1.6.4 would otherwise refuse this tree for its own reason (too strict) first.
  const outcome = await joinInWorker(await crafted((tree) => tree[3].parent.unmergedLeaves.unshift(16)), {
    library: new URL("index.js", UPSTREAM).href,
    config: new URL("clientConfig.js", UPSTREAM).href,
    deadline: 8_000,
  });
  assert.match(outcome, /^hang /, outcome);
  t.diagnostic(outcome);
});
