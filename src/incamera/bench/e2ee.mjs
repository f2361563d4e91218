// The measuring half of `incamera bench e2ee` (src/incamera/bench/e2ee.py runs it):
//   node e2ee.mjs --members 10,100,500 [--rounds 3] [--batch 50]
// prints one JSON object. It uses the browser's own modules, src/incamera/web/e2ee/mls.js
// (and sframe.js when it exists), so the figures are those of the code the web app runs.
//
// For each N: a group of N members is built by one committer adding the others in commits of
// `batch` key packages; only the committer's state and one observer's are kept (the others
// never process anything: nothing they do is measured). Then `rounds` times a new participant
// joins, measured as the web app lives it:
//   joiner_keys_ms     the committer starts the add commit ... the server accepts it (the
//                      committer confirms) ... the joiner has processed the Welcome with the
//                      server's ratchet tree and derived its SFrame epoch secret;
//   commit_ms / join_ms  the committer's and the joiner's share of that;
//   member_process_ms  an existing member (the observer) processing the same commit and
//                      deriving the new SFrame epoch secret;
// with the sizes of what the server relays and stores (commit, welcome, ratchet tree, group
// info). With --tree used (the default) the committer first makes one commit with an update
// path, as any real meeting has had (a leave, the periodic update), and each round's joiner is
// removed again afterwards (unmeasured), so every round joins such a group of N. --tree fresh
// joins the tree that adds alone leave, whose parent nodes are all blank: joiners stay, so
// round r joins a group of N + r - 1. ts-mls 1.6.4's parent-hash verification on
// join costs far more once parent nodes exist (nonblank_parent_nodes says how many there are).
// With src/incamera/web/e2ee/sframe.js present, sframe_receive_keys_ms is the time the joiner
// then spends deriving the SFrame keys of every member's microphone and camera KID.

import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

const web = new URL("../web/e2ee/", import.meta.url);
const { MlsMember, CIPHER_SUITE, toBase64Url } = await import(new URL("mls.js", web).href);
const { decodeRatchetTree } = await import(new URL("../vendor/ts-mls.js", web).href);

function parseArgs(argv) {
  const args = { members: [10, 100, 500], rounds: 3, batch: 50, tree: "used" };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--members") args.members = value.split(",").map(Number);
    else if (flag === "--rounds") args.rounds = Number(value);
    else if (flag === "--batch") args.batch = Number(value);
    else if (flag === "--tree") args.tree = value;
    else throw new Error(`unknown option ${flag}`);
  }
  const positive = (n) => Number.isInteger(n) && n >= 1;
  if (!args.members.every((n) => Number.isInteger(n) && n >= 2)) throw new Error("--members: integers >= 2");
  if (!positive(args.rounds) || !positive(args.batch)) throw new Error("--rounds and --batch: integers >= 1");
  if (args.tree !== "used" && args.tree !== "fresh") throw new Error("--tree: used or fresh");
  return args;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const round2 = (x) => Math.round(x * 100) / 100;

/** The roster every member consults: id -> {name, deviceKey}. */
class Meeting {
  constructor() {
    this.roster = new Map();
    this.serial = 0;
  }
  async participant() {
    const id = `p${++this.serial}`;
    const name = `Participant ${this.serial}`;
    const member = await MlsMember.create({ id, name, roster: (who) => this.roster.get(who) });
    this.roster.set(id, { name, deviceKey: toBase64Url(member.deviceKey) });
    return member;
  }
}

async function sframeProbe() {
  const url = new URL("sframe.js", web);
  if (!existsSync(fileURLToPath(url))) return { module: null, note: "src/incamera/web/e2ee/sframe.js not present" };
  try {
    return { module: await import(url.href), note: null };
  } catch (error) {
    return { module: null, note: `sframe.js did not load: ${error.message}` };
  }
}

/**
 * With sframe.js: the receive keys a joiner needs for the whole group in the new epoch, one
 * per member for microphone and one for camera (RFC 9605 §4.4.2 from the epoch's base key
 * and each KID), in ms.
 */
async function sframeReceiveKeys(sframe, epochSecret, leaves, epoch) {
  const contexts = [sframe.STREAM_CONTEXT.microphone, sframe.STREAM_CONTEXT.camera];
  const start = performance.now();
  const base = await sframe.importBaseKey(epochSecret);
  for (const leaf of leaves) {
    for (const context of contexts) {
      await sframe.deriveSFrameKey(sframe.DEFAULT_SUITE, base, sframe.mlsKid(context, leaf, epoch));
    }
  }
  return performance.now() - start;
}

/** Parent nodes that are not blank in an encoded ratchet tree. */
function nonblankParents(bytes) {
  const [tree] = decodeRatchetTree(bytes, 0);
  return tree.filter((node) => node?.nodeType === "parent").length;
}

async function measureSize(n, args, sframe) {
  const meeting = new Meeting();
  const buildStart = performance.now();
  const committer = await meeting.participant();
  await committer.createGroup(crypto.getRandomValues(new Uint8Array(16)));
  let observer = null;
  let size = 1;
  while (size < n) {
    const joiners = [];
    const count = Math.min(args.batch, n - size);
    for (let i = 0; i < count; i++) joiners.push(await meeting.participant());
    const out = await committer.commit({ adds: joiners.map((m) => m.keyPackageBytes) });
    await committer.confirmCommit();
    if (observer === null) {
      observer = joiners[0];
      await observer.joinFromWelcome(out.welcome, out.ratchetTree);
    } else {
      await observer.processCommit(out.commit);
    }
    size += count;
  }
  if (args.tree === "used") {
    // A meeting where a commit with an update path has happened (anyone left, or the periodic
    // update): its parent nodes are no longer all blank, as they are after adds alone.
    const update = await committer.commit({ update: true });
    await committer.confirmCommit();
    await observer.processCommit(update.commit);
  }
  const buildSeconds = (performance.now() - buildStart) / 1000;

  const rounds = [];
  for (let r = 0; r < args.rounds; r++) {
    const joiner = await meeting.participant();
    const t0 = performance.now();
    const out = await committer.commit({ adds: [joiner.keyPackageBytes] });
    await committer.confirmCommit();
    const t1 = performance.now();
    await joiner.joinFromWelcome(out.welcome, out.ratchetTree);
    const joinerSecret = await joiner.exportSframeEpochSecret();
    const t2 = performance.now();
    await observer.processCommit(out.commit);
    const observerSecret = await observer.exportSframeEpochSecret();
    const t3 = performance.now();
    if (toBase64Url(joinerSecret) !== toBase64Url(observerSecret) || joiner.securityCode() !== observer.securityCode()) {
      throw new Error("joiner and member disagree on the epoch");
    }
    let sframeKeysMs = null;
    if (sframe !== null) {
      const leaves = joiner.members().map((m) => m.leaf);
      sframeKeysMs = await sframeReceiveKeys(sframe, joinerSecret, leaves, joiner.epoch);
    }
    if (args.tree === "used") {
      // The joiner leaves again (not measured), so that every round joins a group of N.
      const leave = await committer.commit({ removeLeaves: [joiner.leafIndex] });
      await committer.confirmCommit();
      await observer.processCommit(leave.commit);
    }
    rounds.push({
      joiner_keys_ms: t2 - t0,
      commit_ms: t1 - t0,
      join_ms: t2 - t1,
      member_process_ms: t3 - t2,
      commit_bytes: out.commit.length,
      welcome_bytes: out.welcome.length,
      ratchet_tree_bytes: out.ratchetTree.length,
      group_info_bytes: out.groupInfo.length,
      sframe_receive_keys_ms: sframeKeysMs,
      nonblank_parent_nodes: nonblankParents(out.ratchetTree),
    });
  }
  const pick = (key) => rounds.map((x) => x[key]);
  const sframeTimes = pick("sframe_receive_keys_ms").filter((x) => x !== null);
  return {
    members: n,
    rounds: rounds.length,
    joiner_keys_ms: round2(median(pick("joiner_keys_ms"))),
    commit_ms: round2(median(pick("commit_ms"))),
    join_ms: round2(median(pick("join_ms"))),
    member_process_ms: round2(median(pick("member_process_ms"))),
    commit_bytes: Math.round(median(pick("commit_bytes"))),
    welcome_bytes: Math.round(median(pick("welcome_bytes"))),
    ratchet_tree_bytes: Math.round(median(pick("ratchet_tree_bytes"))),
    group_info_bytes: Math.round(median(pick("group_info_bytes"))),
    sframe_receive_keys_ms: sframeTimes.length ? round2(median(sframeTimes)) : null,
    joiner_keys_samples_ms: pick("joiner_keys_ms").map(round2),
    nonblank_parent_nodes: median(pick("nonblank_parent_nodes")),
    build_seconds: round2(buildSeconds),
  };
}

const args = parseArgs(process.argv.slice(2));
const probe = await sframeProbe();
const results = [];
for (const n of args.members) results.push(await measureSize(n, args, probe.module));
process.stdout.write(
  JSON.stringify({
    benchmark: "e2ee",
    cipher_suite: CIPHER_SUITE,
    batch: args.batch,
    tree: args.tree,
    node: process.version,
    sframe: probe.note,
    results,
  }) + "\n",
);
