// node --test tests/js/parenthash.test.mjs — the ratchet-tree validation a joiner runs (RFC 9420
// §7.9.2 parent hashes, §7.8 tree hash) in the vendored ts-mls bundle, which client/build.sh
// builds from ts-mls 1.6.4 with client/patches/ts-mls+1.6.4.patch (the verification computes
// each hash once instead of O(n^2) times). Three kinds of evidence:
//  - RFC interop vectors (tests/vectors/tree-validation.json): every subtree's tree hash, and
//    the parent hashes verify; flipping any parent hash, encryption key or leaf parent hash fails;
//  - a real group built through mls.js (adds, update paths from two members, removals, then an
//    add that leaves unmerged leaves): the joiner rejects a ratchet tree with a tampered parent
//    hash, parent encryption key or unmerged_leaves list, and joins with the untampered one;
//  - equivalence with unpatched ts-mls 1.6.4 (client/node_modules/ts-mls, as `npm ci` installs
//    it): the same parent-hash verdict or the same error on every tree of that group's history
//    and on thousands of seeded random mutations of them; the same joinGroup outcome wherever
//    1.6.4's unmerged_leaves check agrees with RFC 9420 §12.4.3.1 (the patch's change 2 replaces
//    it with the RFC rule; where they differ, the bundle follows a reference of the RFC rule
//    written here; tests/js/unmerged.test.mjs has the rest of that change's tests).
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  CIPHER_SUITE,
  MlsMember,
  MlsSessionError,
  toBase64Url,
} from "../../src/incamera/web/e2ee/mls.js";
import * as M from "../../src/incamera/web/vendor/ts-mls.js";

import { bareKeyPackage, decodeTree, hex, isParent } from "./tree-support.mjs";

const ROOT = new URL("../../", import.meta.url);
const VECTORS = JSON.parse(readFileSync(new URL("tests/vectors/tree-validation.json", ROOT), "utf8"));
/** ts-mls 1.6.4 exactly as published (build.sh patches a copy, never node_modules itself). */
const UPSTREAM = new URL("client/node_modules/ts-mls/dist/src/", ROOT);
const HAVE_UPSTREAM = existsSync(fileURLToPath(new URL("parentHash.js", UPSTREAM)));

const cs = await M.getCiphersuiteImpl(M.getCiphersuiteFromName(CIPHER_SUITE));
const fromHex = (text) => Uint8Array.from(text.match(/../g) ?? [], (byte) => parseInt(byte, 16));
const flipped = (bytes, at = 0) => {
  const copy = bytes.slice();
  copy[at % copy.length] ^= 0x01;
  return copy;
};
/** The result of an async call as a comparable string: its value, or its error's name and message. */
async function outcome(call) {
  try {
    return `ok ${JSON.stringify(await call())}`;
  } catch (error) {
    return `error ${error?.name}: ${error?.message}`;
  }
}

// -- a real group, built through mls.js -----------------------------------------------------------

/**
 * 14 members; commits with update paths from two different members, two removals whose blanks
 * are refilled, and a last commit (by `a`) adding `joiner` (an MlsMember) and `raw` (a bare key
 * package, for joinGroup with either implementation). trees: the ratchet tree of every epoch.
 */
async function buildGroup() {
  const roster = new Map();
  const lookup = (id) => roster.get(id);
  let serial = 0;
  const member = async () => {
    serial += 1;
    const id = `p${serial}`;
    const name = `Participant ${serial}`;
    const created = await MlsMember.create({ id, name, roster: lookup });
    roster.set(id, { name, deviceKey: toBase64Url(created.deviceKey) });
    return created;
  };
  const a = await member();
  await a.createGroup(crypto.getRandomValues(new Uint8Array(16)));
  const trees = [];
  let b = null;
  const step = async (committer, args) => {
    const out = await committer.commit(args);
    await committer.confirmCommit();
    for (const other of [a, b]) if (other !== null && other !== committer) await other.processCommit(out.commit);
    trees.push(out.ratchetTree);
    return out;
  };
  for (const size of [3, 4, 5]) {
    const joiners = [];
    for (let i = 0; i < size; i++) joiners.push(await member());
    const out = await step(a, { adds: joiners.map((m) => m.keyPackageBytes) });
    if (b === null) {
      b = joiners[1];
      await b.joinFromWelcome(out.welcome, out.ratchetTree);
    }
  }
  await step(a, { update: true });
  await step(b, { update: true });
  await step(a, { removeLeaves: [4, 9] });
  await step(b, { adds: [(await member()).keyPackageBytes, (await member()).keyPackageBytes] });
  await step(b, { update: true });
  await step(a, { adds: [(await member()).keyPackageBytes] });

  const joiner = await member();
  const { raw, rawBytes } = await bareKeyPackage(cs, roster);
  const last = await step(a, { adds: [joiner.keyPackageBytes, rawBytes] });
  return { a, b, joiner, raw, last, trees };
}

let groupPromise = null;
const group = () => (groupPromise ??= buildGroup());

/** Leaf index of `joiner` in the final tree (from its signature key). */
function leafOf(tree, signatureKey) {
  for (let i = 0; i < tree.length; i += 2) {
    if (tree[i] !== undefined && hex(tree[i].leaf.signaturePublicKey) === hex(signatureKey)) return i / 2;
  }
  throw new Error("leaf not found");
}

// -- RFC 9420 interop vectors ----------------------------------------------------------------------

test("tree-validation vectors: tree hash of every node, parent hashes valid", async () => {
  assert.ok(VECTORS.length >= 3);
  for (const vector of VECTORS) {
    assert.equal(vector.cipher_suite, 1);
    const tree = decodeTree(fromHex(vector.tree));
    const hashes = [];
    for (let i = 0; i < vector.tree_hashes.length; i++) hashes.push(hex(await M.treeHash(tree, i, cs.hash)));
    assert.deepEqual(hashes, vector.tree_hashes);
    assert.equal(await M.verifyParentHashes(tree, cs.hash), true);
  }
});

test("tree-validation vectors: any flipped parent hash, parent key or leaf parent hash fails", async () => {
  let tampered = 0;
  for (const vector of VECTORS) {
    const bytes = fromHex(vector.tree);
    const count = decodeTree(bytes).length;
    for (let i = 0; i < count; i++) {
      const variants = [];
      const node = decodeTree(bytes)[i];
      if (isParent(node)) {
        if (node.parent.parentHash.length > 0) {
          variants.push((n) => (n.parent.parentHash = flipped(n.parent.parentHash, 7)));
        }
        variants.push((n) => (n.parent.hpkePublicKey = flipped(n.parent.hpkePublicKey, 3)));
      } else if (node?.leaf.leafNodeSource === "commit") {
        variants.push((n) => (n.leaf.parentHash = flipped(n.leaf.parentHash, 11)));
      }
      for (const tamper of variants) {
        const tree = decodeTree(bytes);
        tamper(tree[i]);
        assert.equal(await M.verifyParentHashes(tree, cs.hash), false, `vector tree node ${i}`);
        tampered += 1;
      }
    }
  }
  assert.ok(tampered >= 20, `${tampered} tampered trees`);
});

// -- a real group: the joiner rejects tampered trees -----------------------------------------------

test("the group's tree has what the checks are about: parent nodes, parent-hash chains, unmerged leaves", async () => {
  const { last, joiner } = await group();
  const tree = decodeTree(last.ratchetTree);
  const parents = tree.filter(isParent);
  assert.ok(parents.length >= 4, `${parents.length} non-blank parent nodes`);
  assert.ok(tree.some((n) => n?.nodeType === "leaf" && n.leaf.leafNodeSource === "commit"));
  const j = leafOf(tree, joiner.deviceKey);
  assert.ok(parents.some((p) => p.parent.unmergedLeaves.includes(j)), "the joiner is an unmerged leaf");
  assert.ok(tree.some((n, i) => n === undefined && i % 2 === 1), "blank parent nodes too");
  assert.equal(await M.verifyParentHashes(tree, cs.hash), true);
});

/** The final tree, re-encoded after `tamper(tree)`. */
async function tamperedTree(tamper) {
  const { last } = await group();
  const tree = decodeTree(last.ratchetTree);
  tamper(tree);
  return { bytes: M.encodeRatchetTree(tree), tree };
}

async function joinRejected(tamper, label, reason = /parent hash/) {
  const { joiner, last } = await group();
  const { bytes, tree } = await tamperedTree(tamper);
  assert.equal(await M.verifyParentHashes(tree, cs.hash), false, `${label}: parent hashes`);
  await assert.rejects(joiner.joinFromWelcome(last.welcome, bytes), (error) => {
    assert.ok(error instanceof MlsSessionError, String(error));
    assert.equal(error.code, "rejected");
    assert.match(error.message, reason, label);
    return true;
  });
  assert.equal(joiner.epoch, null, "a rejected welcome leaves the member out of the group");
}

test("join rejected: a parent node's parent_hash changed", async () => {
  const { last } = await group();
  const tree = decodeTree(last.ratchetTree);
  const targets = tree.flatMap((n, i) => (isParent(n) && n.parent.parentHash.length > 0 ? [i] : []));
  assert.ok(targets.length >= 2);
  for (const index of targets) {
    const tamper = (t) => (t[index].parent.parentHash = flipped(t[index].parent.parentHash, 5));
    await joinRejected(tamper, `node ${index}`);
  }
});

test("join rejected: a parent node's encryption key changed", async () => {
  const { last } = await group();
  const tree = decodeTree(last.ratchetTree);
  const targets = tree.flatMap((n, i) => (isParent(n) ? [i] : []));
  for (const index of targets) {
    const tamper = (t) => (t[index].parent.hpkePublicKey = flipped(t[index].parent.hpkePublicKey, 9));
    await joinRejected(tamper, `node ${index}`);
  }
});

test("join rejected: unmerged_leaves lists changed (consistently along the path)", async () => {
  const { last, joiner } = await group();
  const j = leafOf(decodeTree(last.ratchetTree), joiner.deviceKey);
  // Dropping the joiner from every list that has it keeps the lists consistent (the structural
  // check passes); the parent hash covered the tree without that leaf, so it no longer matches.
  await joinRejected((t) => {
    for (const n of t) if (isParent(n)) n.parent.unmergedLeaves = n.parent.unmergedLeaves.filter((x) => x !== j);
  }, "joiner dropped");
  // Claiming a member that was merged (leaf 0, the committer of the path) as unmerged in every
  // non-blank node above it: consistent lists by RFC 9420 §12.4.3.1 (every non-blank node
  // between leaf 0 and a node listing it lists it too; unpatched 1.6.4, which wants equal lists
  // along the path, refused it there), but the parent hashes covered leaf 0 and no longer match.
  await joinRejected((t) => {
    for (let index = 1; index < t.length; index += 2) {
      const n = t[index];
      const span = (index ^ (index + 1)) >> 1; // half the subtree width: leaf 0 is under `index` iff index <= span
      if (isParent(n) && index <= span && !n.parent.unmergedLeaves.includes(0)) {
        n.parent.unmergedLeaves = [0, ...n.parent.unmergedLeaves];
      }
    }
  }, "leaf 0 added");
});

test("join with the untampered tree succeeds and agrees with the group", async () => {
  const { a, joiner, last } = await group();
  await joiner.joinFromWelcome(last.welcome, last.ratchetTree);
  assert.equal(joiner.epoch, a.epoch);
  assert.equal(hex(await joiner.exportSframeEpochSecret()), hex(await a.exportSframeEpochSecret()));
  assert.equal(joiner.securityCode(), a.securityCode());
});

// -- equivalence with unpatched ts-mls 1.6.4 --------------------------------------------------------

/** Seeded PRNG (mulberry32): the same mutations on every run. */
function random(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (items) => (items.length === 0 ? undefined : items[int(items.length)]);
  return { int, pick };
}

/**
 * One random change to a decoded tree: what an attacker or a bug could hand a joiner. With
 * inRange, an unmerged leaf added is a leaf of the tree (ts-mls 1.6.4's joinGroup loops without
 * end, growing an array until the process dies, on an unmerged leaf outside the tree).
 */
function mutate(tree, rng, { inRange = false } = {}) {
  const parents = tree.flatMap((n, i) => (isParent(n) ? [i] : []));
  const leaves = tree.flatMap((n, i) => (n?.nodeType === "leaf" ? [i] : []));
  const anyParentSlot = () => 1 + 2 * rng.int((tree.length - 1) / 2);
  const p = rng.pick(parents);
  const l = rng.pick(leaves);
  switch (rng.int(13)) {
    case 0:
      if (p !== undefined && tree[p].parent.parentHash.length > 0) {
        tree[p].parent.parentHash = flipped(tree[p].parent.parentHash, rng.int(32));
      }
      break;
    case 1:
      if (p !== undefined) tree[p].parent.hpkePublicKey = flipped(tree[p].parent.hpkePublicKey, rng.int(32));
      break;
    case 2:
      if (l !== undefined && tree[l].leaf.leafNodeSource === "commit") {
        tree[l].leaf.parentHash = flipped(tree[l].leaf.parentHash, rng.int(32));
      }
      break;
    case 3:
      if (p !== undefined && tree[p].parent.unmergedLeaves.length > 0) {
        const list = tree[p].parent.unmergedLeaves.slice();
        list.splice(rng.int(list.length), 1);
        tree[p].parent.unmergedLeaves = list;
      }
      break;
    case 4:
      if (p !== undefined) {
        const leafCount = (tree.length + 1) / 2;
        const j = rng.int(inRange ? leafCount : leafCount + 2);
        tree[p].parent.unmergedLeaves = [...tree[p].parent.unmergedLeaves, j];
      }
      break;
    case 5:
      if (p !== undefined) tree[p] = undefined;
      break;
    case 6:
      if (l !== undefined) tree[l] = undefined;
      break;
    case 7: {
      const q = rng.pick(parents);
      if (p !== undefined && q !== undefined) [tree[p], tree[q]] = [tree[q], tree[p]];
      break;
    }
    case 8: {
      const q = rng.pick(parents);
      if (p !== undefined && q !== undefined) tree[p].parent.parentHash = tree[q].parent.parentHash.slice();
      break;
    }
    case 9: // structure broken: a leaf node where a parent belongs, or a parent node where a leaf belongs
      if (l !== undefined && rng.int(2) === 0) tree[anyParentSlot()] = tree[l];
      else if (p !== undefined && l !== undefined) tree[l] = tree[p];
      break;
    case 10: // a blank parent gets a copy of a non-blank one
      if (p !== undefined) tree[anyParentSlot()] = structuredClone(tree[p]);
      break;
    case 11: {
      // one leaf (blank, elsewhere, or below) listed as unmerged by several parent nodes
      const leafCount = (tree.length + 1) / 2;
      const j = rng.int(inRange ? leafCount : leafCount + 2);
      for (const q of parents) {
        if (rng.int(2) === 0) tree[q].parent.unmergedLeaves = [...tree[q].parent.unmergedLeaves, j];
      }
      break;
    }
    default:
      if (p !== undefined && tree[p].parent.unmergedLeaves.length > 0) {
        tree[p].parent.unmergedLeaves = [...tree[p].parent.unmergedLeaves, tree[p].parent.unmergedLeaves[0]];
      }
  }
}

test("same verdict as unpatched ts-mls 1.6.4 on every tree and on seeded random mutations", async (t) => {
  if (!HAVE_UPSTREAM) {
    t.skip("client/node_modules/ts-mls is not installed (make js-deps)");
    return;
  }
  const upstream = await import(new URL("parentHash.js", UPSTREAM).href);
  const { trees } = await group();
  const bases = [...trees, ...VECTORS.map((v) => fromHex(v.tree))];
  const rng = random(0x9420);
  const tally = new Map();
  for (const bytes of bases) {
    for (let round = 0; round < 40; round++) {
      const mutations = round === 0 ? 0 : 1 + rng.int(3);
      const seed = rng.int(2 ** 31);
      const make = () => {
        const tree = decodeTree(bytes);
        const local = random(seed);
        for (let k = 0; k < mutations; k++) mutate(tree, local);
        return tree;
      };
      const expected = await outcome(() => upstream.verifyParentHashes(make(), cs.hash));
      const actual = await outcome(() => M.verifyParentHashes(make(), cs.hash));
      assert.equal(actual, expected, `tree of ${bytes.length} bytes, ${mutations} mutations, seed ${seed}`);
      tally.set(expected, (tally.get(expected) ?? 0) + 1);
    }
  }
  t.diagnostic(`outcomes: ${JSON.stringify([...tally])}`);
  // Both verdicts and errors were exercised, each many times.
  assert.ok((tally.get("ok true") ?? 0) >= 50, JSON.stringify([...tally]));
  assert.ok((tally.get("ok false") ?? 0) >= 50, JSON.stringify([...tally]));
  assert.ok([...tally.keys()].some((k) => k.startsWith("error")), JSON.stringify([...tally]));
});

/**
 * Reference of RFC 9420 §12.4.3.1's unmerged_leaves rule, independent of ts-mls's tree math:
 * for each non-blank parent node P (a parent node at an odd index) and each entry L of its
 * unmerged_leaves, L is a leaf index of the tree, the node at 2L is a leaf node, 2L lies in P's
 * subtree, and each non-blank node strictly between 2L and P is a parent node listing L.
 */
function rfcUnmergedLeavesValid(tree) {
  const level = (x) => {
    let k = 0;
    while ((x >> k) & 1) k += 1;
    return k;
  };
  const up = (x) => {
    const k = level(x);
    return ((x >> (k + 1)) & 1) === 0 ? x + (1 << k) : x - (1 << k);
  };
  const leafCount = (tree.length + 1) / 2;
  for (let p = 1; p < tree.length; p += 2) {
    if (!isParent(tree[p])) continue;
    const half = (1 << level(p)) - 1; // P's subtree: node indices p - half .. p + half
    for (const l of tree[p].parent.unmergedLeaves) {
      if (!(Number.isInteger(l) && l >= 0 && l < leafCount)) return false;
      if (tree[2 * l]?.nodeType !== "leaf") return false;
      if (2 * l < p - half || 2 * l > p + half) return false;
      for (let x = up(2 * l); x !== p; x = up(x)) {
        if (tree[x] !== undefined && !(isParent(tree[x]) && tree[x].parent.unmergedLeaves.includes(l))) return false;
      }
    }
  }
  return true;
}

/** The errors of validateRatchetTree's unmerged_leaves loop, unpatched (1.6.4) and patched. */
const UPSTREAM_UNMERGED_ERROR = /Unmerged leaf did not represent|must list leaf node|Expected parent node/;
const PATCHED_UNMERGED_ERROR = /Unmerged leaf index is outside|Unmerged leaf did not represent|must list leaf node/;

test("same joinGroup outcome as unpatched ts-mls 1.6.4 where its unmerged_leaves check agrees with the RFC", async (t) => {
  if (!HAVE_UPSTREAM) {
    t.skip("client/node_modules/ts-mls is not installed (make js-deps)");
    return;
  }
  const upstream = await import(new URL("index.js", UPSTREAM).href);
  const { defaultClientConfig: upstreamConfig } = await import(new URL("clientConfig.js", UPSTREAM).href);
  const upstreamCs = await upstream.getCiphersuiteImpl(upstream.getCiphersuiteFromName(CIPHER_SUITE));
  const { last, raw } = await group();
  const acceptAll = { validateCredential: async () => true };
  const join = async (lib, suite, config, tree) => {
    const [message] = M.decodeMlsMessage(last.welcome, 0);
    const state = await lib.joinGroup(
      message.welcome,
      raw.publicPackage,
      structuredClone(raw.privatePackage),
      M.emptyPskIndex,
      suite,
      tree,
      undefined,
      { ...config, authService: acceptAll },
    );
    return { epoch: String(state.groupContext.epoch), treeHash: hex(state.groupContext.treeHash) };
  };
  // What is compared, for each tree (the untampered one, then random mutations of it; inRange:
  // 1.6.4 never returns on an unmerged leaf index beyond the tree, so none is made here):
  //  - the RFC rule (rfcUnmergedLeavesValid) holds and 1.6.4's outcome is not an error of its
  //    unmerged_leaves loop ("agree"): exactly the same outcome, value or error (the bundle's
  //    loop passes, as 1.6.4's did or an earlier error stopped both; every other check is
  //    1.6.4's, with change 1 of the patch proven equivalent above);
  //  - the RFC rule holds but 1.6.4's loop refused the tree ("1.6.4 too strict"): the bundle's
  //    outcome is not an error of its unmerged_leaves loop;
  //  - the RFC rule fails: the bundle refuses the tree, with 1.6.4's outcome (an error before
  //    the loop, or the loop's own error) or with an error of its unmerged_leaves loop ("RFC
  //    refuses"; 1.6.4 may have accepted the lists and failed later, e.g. on the tree hash).
  const rng = random(0x7a9);
  const results = new Map();
  const cases = new Map();
  const count = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
  for (let round = 0; round < 40; round++) {
    const mutations = round === 0 ? 0 : 1 + rng.int(2);
    const seed = rng.int(2 ** 31);
    const make = () => {
      const tree = decodeTree(last.ratchetTree);
      const local = random(seed);
      for (let k = 0; k < mutations; k++) mutate(tree, local, { inRange: true });
      return tree;
    };
    const rfcValid = rfcUnmergedLeavesValid(make());
    const expected = await outcome(() => join(upstream, upstreamCs, upstreamConfig, make()));
    const actual = await outcome(() => join(M, cs, M.defaultClientConfig, make()));
    const label = `${mutations} mutations, seed ${seed}: 1.6.4 ${expected}; bundle ${actual}`;
    if (round === 0) assert.match(actual, /^ok /, `untampered tree: ${label}`);
    if (rfcValid && !UPSTREAM_UNMERGED_ERROR.test(expected)) {
      assert.equal(actual, expected, label);
      count(cases, "agree");
    } else if (rfcValid) {
      assert.doesNotMatch(actual, PATCHED_UNMERGED_ERROR, label);
      count(cases, "1.6.4 too strict");
    } else {
      assert.ok(actual.startsWith("error "), label);
      assert.ok(actual === expected || PATCHED_UNMERGED_ERROR.test(actual), label);
      count(cases, "RFC refuses");
    }
    count(results, actual);
  }
  const summary = JSON.stringify({ cases: [...cases], outcomes: [...results] });
  t.diagnostic(summary);
  assert.ok((cases.get("agree") ?? 0) >= 20, summary);
  assert.ok((cases.get("RFC refuses") ?? 0) >= 3, summary);
  assert.ok([...results.keys()].some((k) => k.includes("Unable to verify parent hash")), summary);
});
