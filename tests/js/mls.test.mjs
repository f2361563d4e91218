// node --test tests/js/mls.test.mjs — src/incamera/web/e2ee/mls.js over the vendored ts-mls.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DeviceKey,
  MlsMember,
  MlsSessionError,
  encodeIdentity,
  fromBase64Url,
  parseIdentity,
  prepareDeviceKey,
  securityCodeFrom,
  toBase64Url,
} from "../../src/incamera/web/e2ee/mls.js";

const text = new TextEncoder();
const untext = new TextDecoder();

/** The server's participant list as every client sees it: id -> {name, deviceKey (b64url)}. */
class Roster {
  constructor() {
    this.entries = new Map();
    this.lookup = (id) => this.entries.get(id);
  }
  async join(id, name, { rejectInvalid = true } = {}) {
    const member = await MlsMember.create({ id, name, roster: this.lookup, rejectInvalid });
    this.entries.set(id, { name, deviceKey: toBase64Url(member.deviceKey) });
    return member;
  }
}

const groupId = () => crypto.getRandomValues(new Uint8Array(16));
const hex = (bytes) => Buffer.from(bytes).toString("hex");

async function rejects(promise, code) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof MlsSessionError, `expected MlsSessionError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

/** Three members: alice creates, adds bob and carol in one commit. */
async function threeMembers() {
  const roster = new Roster();
  const alice = await roster.join("p-alice", "Alice");
  const bob = await roster.join("p-bob", "Bob");
  const carol = await roster.join("p-carol", "Carol");
  await alice.createGroup(groupId());
  const out = await alice.commit({ adds: [bob.keyPackageBytes, carol.keyPackageBytes] });
  await alice.confirmCommit();
  await bob.joinFromWelcome(out.welcome, out.ratchetTree);
  await carol.joinFromWelcome(out.welcome, out.ratchetTree);
  return { roster, alice, bob, carol, out };
}

async function agreement(members) {
  return Promise.all(
    members.map(async (m) => ({
      epoch: m.epoch,
      secret: hex(await m.exportSframeEpochSecret()),
      authenticator: hex(await m.epochAuthenticator()),
      code: m.securityCode(),
    })),
  );
}

// -- reading the clear framing, as the server does (RFC 9420 §6) ------------------------------------

function readVarint(bytes, at) {
  const prefix = bytes[at] >> 6;
  const size = 1 << prefix;
  let value = bytes[at] & 0x3f;
  for (let i = 1; i < size; i++) value = value * 256 + bytes[at + i];
  return [value, at + size];
}

function framing(bytes) {
  const version = (bytes[0] << 8) | bytes[1];
  const wireformat = (bytes[2] << 8) | bytes[3];
  const [length, at] = readVarint(bytes, 4);
  const gid = bytes.slice(at, at + length);
  const epoch = Number(new DataView(bytes.buffer, bytes.byteOffset + at + length, 8).getBigUint64(0));
  const contentType = bytes[at + length + 8];
  return { version, wireformat, groupId: gid, epoch, contentType };
}

// -- tests ---------------------------------------------------------------------------------------

test("create, add two in one commit: everyone agrees on epoch, exporter secret, security code", async () => {
  const { alice, bob, carol, out } = await threeMembers();
  const views = await agreement([alice, bob, carol]);
  assert.equal(views[0].epoch, 1);
  assert.deepEqual(views[1], views[0]);
  assert.deepEqual(views[2], views[0]);
  assert.equal((await alice.exportSframeEpochSecret()).length, 32);
  // RFC 9605 §5.2 length (AEAD.Nk = 16 for suite 0x0004): a different export, also agreed.
  const short = hex(await alice.exportSframeEpochSecret(16));
  assert.equal(short.length, 32);
  assert.equal(hex(await carol.exportSframeEpochSecret(16)), short);
  assert.notEqual(views[0].secret.slice(0, 32), short);
  assert.match(views[0].code, /^\d{5} \d{5} \d{5} \d{5}$/);
  assert.equal(views[0].code, securityCodeFrom(fromBase64Url(toBase64Url(await bob.epochAuthenticator()))));
  assert.equal(out.epoch, 0);
  assert.deepEqual(
    [alice.leafIndex, bob.leafIndex, carol.leafIndex],
    [0, 1, 2],
  );
  for (const member of [alice, bob, carol]) {
    const seen = member.members();
    assert.deepEqual(
      seen.map((m) => [m.leaf, m.id, m.name, m.valid, m.self]),
      [
        [0, "p-alice", "Alice", true, member === alice],
        [1, "p-bob", "Bob", true, member === bob],
        [2, "p-carol", "Carol", true, member === carol],
      ],
    );
    assert.deepEqual(seen[1].signatureKey, bob.deviceKey);
  }
  assert.deepEqual(alice.groupId, bob.groupId);
});

test("the epoch-0 group and a commit's public material are MLS wire formats", async () => {
  const roster = new Roster();
  const alice = await roster.join("a", "A");
  const bob = await roster.join("b", "B");
  const gid = groupId();
  const created = await alice.createGroup(gid);
  assert.equal(alice.epoch, 0);
  assert.deepEqual([...created.groupInfo.subarray(0, 4)], [0, 1, 0, 4]); // mls10, mls_group_info
  assert.deepEqual([...bob.keyPackageBytes.subarray(0, 4)], [0, 1, 0, 5]); // mls_key_package
  assert.ok(created.ratchetTree.length > 0);
  const out = await alice.commit({ adds: [bob.keyPackageBytes] });
  // The commit is a PrivateMessage: group id, epoch and content type (3 = commit) in clear.
  assert.deepEqual(framing(out.commit), { version: 1, wireformat: 2, groupId: gid, epoch: 0, contentType: 3 });
  assert.deepEqual([...out.welcome.subarray(0, 4)], [0, 1, 0, 3]); // mls_welcome
  assert.deepEqual([...out.groupInfo.subarray(0, 4)], [0, 1, 0, 4]);
  assert.equal(alice.epoch, 0, "pending until confirmed");
  assert.ok(alice.hasPendingCommit);
  await alice.confirmCommit();
  assert.equal(alice.epoch, 1);
  await bob.joinFromWelcome(out.welcome, out.ratchetTree);
  const message = await bob.encryptApplication(text.encode("x"));
  assert.deepEqual(framing(message), { version: 1, wireformat: 2, groupId: gid, epoch: 1, contentType: 1 });
});

test("a removed member cannot process the next commit nor derive the new exporter secret", async () => {
  const { alice, bob, carol } = await threeMembers();
  const before = hex(await bob.exportSframeEpochSecret());
  const removal = await alice.commit({ removeLeaves: [bob.leafIndex] });
  assert.equal(removal.welcome, null);
  await alice.confirmCommit();
  assert.deepEqual(await carol.processCommit(removal.commit), { epoch: 2, removed: false });
  assert.deepEqual(await bob.processCommit(removal.commit), { epoch: 1, removed: true });
  assert.ok(bob.removed);
  assert.equal(bob.epoch, 1);
  await rejects(bob.exportSframeEpochSecret(), "removed");
  const after = hex(await alice.exportSframeEpochSecret());
  assert.notEqual(after, before);
  assert.equal(hex(await carol.exportSframeEpochSecret()), after);
  assert.deepEqual(
    alice.members().map((m) => m.id),
    ["p-alice", "p-carol"],
  );

  const next = await carol.commit({ update: true });
  await carol.confirmCommit();
  await rejects(bob.processCommit(next.commit), "removed");
  await alice.processCommit(next.commit);
  assert.deepEqual(await agreement([alice]), await agreement([carol]));
});

test("a removed member that never saw its removal cannot follow either", async () => {
  const { alice, bob, carol } = await threeMembers();
  const removal = await alice.commit({ removeLeaves: [bob.leafIndex] });
  await alice.confirmCommit();
  await carol.processCommit(removal.commit);
  const next = await carol.commit({ update: true });
  await carol.confirmCommit();
  await alice.processCommit(next.commit);
  await rejects(bob.processCommit(next.commit), "future_epoch");
  assert.notEqual(hex(await bob.exportSframeEpochSecret()), hex(await alice.exportSframeEpochSecret()));
});

test("two commits for one epoch: the second is rejected, its author discards it and follows", async () => {
  const { alice, bob, carol } = await threeMembers();
  const first = await alice.commit({ update: true });
  const second = await carol.commit({ update: true });
  assert.equal(first.epoch, second.epoch);
  // The server accepts the first: alice confirms, bob applies it.
  await alice.confirmCommit();
  await bob.processCommit(first.commit);
  await rejects(bob.processCommit(second.commit), "stale_epoch");
  await rejects(alice.processCommit(second.commit), "stale_epoch");
  // carol is told stale_epoch, forgets her commit and applies the winner.
  await carol.discardCommit();
  assert.ok(!carol.hasPendingCommit);
  await rejects(carol.confirmCommit(), "no_pending_commit");
  await carol.processCommit(first.commit);
  const views = await agreement([alice, bob, carol]);
  assert.equal(views[0].epoch, 2);
  assert.deepEqual(views[1], views[0]);
  assert.deepEqual(views[2], views[0]);
  // A commit that arrives while one's own is pending discards it.
  const third = await bob.commit({ update: true });
  const fourth = await carol.commit({ update: true });
  await bob.confirmCommit();
  await carol.processCommit(third.commit);
  assert.ok(!carol.hasPendingCommit);
  await alice.processCommit(third.commit);
  await rejects(alice.processCommit(fourth.commit), "stale_epoch");
  assert.deepEqual((await agreement([alice, bob, carol])).map((v) => v.code), Array(3).fill(bob.securityCode()));
});

test("credential rule: a wrong name or device key in the roster is refused or marked invalid", async () => {
  const { roster, alice, bob, carol } = await threeMembers();
  // Mallory's key package claims to be "Dave" but the roster says Dave has another device key.
  const mallory = await MlsMember.create({ id: "p-dave", name: "Dave", roster: roster.lookup });
  await roster.join("p-dave", "Dave");
  await rejects(alice.commit({ adds: [mallory.keyPackageBytes] }), "rejected");
  assert.ok(!alice.hasPendingCommit);
  // Wrong name: the key package says "Eve", the roster knows p-eve as "Eve Real".
  const eve = await roster.join("p-eve", "Eve");
  roster.entries.set("p-eve", { ...roster.entries.get("p-eve"), name: "Eve Real" });
  await rejects(alice.commit({ adds: [eve.keyPackageBytes] }), "rejected");
  // Unknown id, and a credential that is not our canonical JSON.
  const ghost = await MlsMember.create({ id: "p-ghost", name: "Ghost", roster: roster.lookup });
  await rejects(alice.commit({ adds: [ghost.keyPackageBytes] }), "rejected");

  // A committer that accepts anything (rejectInvalid false) adds mallory: members who check
  // refuse the commit; a member that does not check marks the leaf invalid.
  const lax = await MlsMember.create({ id: "p-lax", name: "Lax", roster: roster.lookup, rejectInvalid: false });
  roster.entries.set("p-lax", { name: "Lax", deviceKey: lax.deviceKey });
  const addLax = await alice.commit({ adds: [lax.keyPackageBytes] });
  await alice.confirmCommit();
  await bob.processCommit(addLax.commit);
  await carol.processCommit(addLax.commit);
  await lax.joinFromWelcome(addLax.welcome, addLax.ratchetTree);
  const bad = await lax.commit({ adds: [mallory.keyPackageBytes] });
  await rejects(alice.processCommit(bad.commit), "rejected");
  await rejects(bob.processCommit(bad.commit), "rejected");
  assert.equal(alice.epoch, 2, "a rejected commit leaves the state alone");
  await lax.confirmCommit();
  const marked = lax.members().find((m) => m.id === "p-dave");
  assert.equal(marked.valid, false);
  assert.equal(lax.members().filter((m) => !m.valid).length, 1);

  // A joiner whose roster does not vouch for an existing member refuses the Welcome.
  const roster2 = new Roster();
  for (const [id, entry] of roster.entries) roster2.entries.set(id, entry);
  roster2.entries.set("p-bob", { name: "Bob", deviceKey: carol.deviceKey });
  const frank = await roster2.join("p-frank", "Frank");
  roster.entries.set("p-frank", roster2.entries.get("p-frank"));
  const addFrank = await alice.commit({ adds: [frank.keyPackageBytes] });
  await alice.confirmCommit();
  await rejects(frank.joinFromWelcome(addFrank.welcome, addFrank.ratchetTree), "rejected");
  assert.equal(frank.epoch, null);
  // Roster changes show in members() at once: bob's key no longer matches for alice.
  roster.entries.set("p-bob", { name: "Bob", deviceKey: carol.deviceKey });
  assert.equal(alice.members().find((m) => m.id === "p-bob").valid, false);
});

test("a device key made ahead of time signs key packages that still bind id, name and key", async () => {
  const deviceKey = await prepareDeviceKey(); // before the participant id is known
  assert.ok(deviceKey instanceof DeviceKey);
  assert.deepEqual(Object.keys(deviceKey), ["publicKey"]); // the private key is not a field
  assert.equal(JSON.stringify(deviceKey).includes("signKey"), false);
  const { roster, alice, bob, carol } = await threeMembers();
  const dan = await MlsMember.create({ id: "p-dan", name: "Dan", roster: roster.lookup, deviceKey });
  assert.equal(hex(dan.deviceKey), hex(deviceKey.publicKey));
  // A key package sent again (the first was left out) keeps the device key, not the HPKE keys.
  const again = await MlsMember.create({ id: "p-dan", name: "Dan", roster: roster.lookup, deviceKey });
  assert.equal(hex(again.deviceKey), hex(deviceKey.publicKey));
  assert.notEqual(hex(again.keyPackageBytes), hex(dan.keyPackageBytes));
  // The roster binds the id and name to this device key: another key for p-dan is refused.
  const other = await prepareDeviceKey();
  roster.entries.set("p-dan", { name: "Dan", deviceKey: toBase64Url(other.publicKey) });
  await rejects(alice.commit({ adds: [again.keyPackageBytes] }), "rejected");
  roster.entries.set("p-dan", { name: "Dan", deviceKey: toBase64Url(deviceKey.publicKey) });
  const add = await alice.commit({ adds: [again.keyPackageBytes] });
  await alice.confirmCommit();
  await bob.processCommit(add.commit);
  await carol.processCommit(add.commit);
  await again.joinFromWelcome(add.welcome, add.ratchetTree);
  assert.equal(again.epoch, 2);
  assert.ok(again.members().every((m) => m.valid));
  assert.ok(alice.members().find((m) => m.id === "p-dan").valid);
  const codes = new Set((await agreement([alice, bob, carol, again])).map((a) => `${a.secret}/${a.code}`));
  assert.equal(codes.size, 1);
  await assert.rejects(
    MlsMember.create({ id: "p-x", name: "X", roster: roster.lookup, deviceKey: deviceKey.pair() }),
    TypeError,
  );
});

test("identity encoding is canonical", () => {
  const bytes = encodeIdentity({ id: "p1", name: "Zoë \"Z\"" });
  assert.equal(untext.decode(bytes), '{"v":1,"id":"p1","name":"Zoë \\"Z\\""}');
  assert.deepEqual(parseIdentity(bytes), { id: "p1", name: "Zoë \"Z\"" });
  for (const other of [
    '{"id":"p1","v":1,"name":"A"}',
    '{"v":1,"id":"p1","name":"A","x":1}',
    '{"v":2,"id":"p1","name":"A"}',
    '{"v":1, "id":"p1","name":"A"}',
    '{"v":1,"id":1,"name":"A"}',
    "[1]",
    "null",
    "",
  ]) {
    assert.equal(parseIdentity(text.encode(other)), null, other);
  }
  assert.equal(parseIdentity(new Uint8Array([0x7b, 0xff, 0x7d])), null);
});

test("security code derivation", () => {
  const authenticator = new Uint8Array(32);
  authenticator.set([0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0x86, 0xa0]);
  // 1; 2^40-1 = 1099511627775 -> 27775; 100000 -> 0; then zero bytes.
  assert.equal(securityCodeFrom(authenticator), "00001 27775 00000 00000");
  assert.throws(() => securityCodeFrom(new Uint8Array(19)), RangeError);
});

test("application messages round trip with an authenticated sender, across one epoch change", async () => {
  const { alice, bob, carol } = await threeMembers();
  const hello = await bob.encryptApplication(text.encode("hello from bob"));
  for (const receiver of [alice, carol]) {
    const got = await receiver.decryptApplication(hello);
    assert.equal(untext.decode(got.data), "hello from bob");
    assert.equal(got.sender.id, "p-bob");
    assert.equal(got.sender.leaf, bob.leafIndex);
    assert.equal(got.sender.valid, true);
    assert.equal(got.epoch, 1);
  }
  await rejects(alice.decryptApplication(hello), "rejected"); // replay: the key is used up
  const late = await carol.encryptApplication(text.encode("sent in epoch 1"));
  // alice commits while bob sends; bob's message from the old epoch still opens afterwards.
  const pending = await alice.commit({ update: true });
  const early = await bob.encryptApplication(text.encode("early"));
  const during = await bob.encryptApplication(text.encode("during the commit"));
  assert.equal(untext.decode((await alice.decryptApplication(during)).data), "during the commit");
  await alice.confirmCommit();
  await bob.processCommit(pending.commit);
  await carol.processCommit(pending.commit);
  // Out of order across the epoch change: the ratchet as it was after "during" is kept.
  assert.equal(untext.decode((await alice.decryptApplication(early)).data), "early");
  await rejects(alice.decryptApplication(during), "rejected");
  const got = await alice.decryptApplication(late);
  assert.equal(untext.decode(got.data), "sent in epoch 1");
  assert.equal(got.epoch, 1);
  const fresh = await alice.encryptApplication(text.encode("epoch 2"));
  assert.equal((await bob.decryptApplication(fresh)).epoch, 2);
  await rejects(bob.processCommit(fresh), "bad_mls"); // an application message is not a commit
  await rejects(bob.decryptApplication(pending.commit), "bad_mls");
});

test("malformed or misplaced input is refused with bad_mls, other groups with wrong_group", async () => {
  const { alice, bob } = await threeMembers();
  const garbage = [new Uint8Array(0), new Uint8Array([0, 1, 0, 2]), crypto.getRandomValues(new Uint8Array(200))];
  for (const bytes of garbage) {
    await rejects(alice.processCommit(bytes), "bad_mls");
    await rejects(alice.decryptApplication(bytes), "bad_mls");
    await rejects(alice.commit({ adds: [bytes] }), "bad_mls");
  }
  await rejects(alice.processCommit(bob.keyPackageBytes), "bad_mls");
  const message = await bob.encryptApplication(text.encode("x"));
  const trailing = new Uint8Array(message.length + 1);
  trailing.set(message);
  await rejects(alice.decryptApplication(trailing), "bad_mls");

  const roster = new Roster();
  const other = await roster.join("o", "O");
  const stranger = await roster.join("s", "S");
  await other.createGroup(groupId());
  const foreign = await other.commit({ adds: [stranger.keyPackageBytes] });
  await rejects(alice.processCommit(foreign.commit), "wrong_group");
  const newcomer = await roster.join("n", "N");
  await rejects(newcomer.joinFromWelcome(foreign.welcome, new Uint8Array([1, 2, 3])), "bad_mls");
  await rejects(newcomer.joinFromWelcome(foreign.welcome, foreign.ratchetTree), "rejected"); // not for us
  await rejects(newcomer.processCommit(foreign.commit), "no_group");
  await rejects(newcomer.commit({ update: true }), "no_group");
  await rejects(alice.createGroup(groupId()), "in_group");
  await rejects(alice.joinFromWelcome(foreign.welcome, foreign.ratchetTree), "in_group");
});

test("the synchronous SHA-256, HMAC and HKDF give exactly WebCrypto's results", async () => {
  const M = await import("../../src/incamera/web/vendor/ts-mls.js");
  const { CIPHER_SUITE, fastHashing } = await import("../../src/incamera/web/e2ee/mls.js");
  const slow = await M.getCiphersuiteImpl(M.getCiphersuiteFromName(CIPHER_SUITE));
  const fast = fastHashing(slow);
  const random = (n) => crypto.getRandomValues(new Uint8Array(n));
  assert.equal(fast.kdf.size, slow.kdf.size);
  for (const size of [0, 1, 31, 32, 33, 64, 65, 200, 1000]) {
    const data = random(size);
    const key = random(1 + (size % 70)); // WebCrypto refuses an empty HMAC key
    assert.equal(hex(await fast.hash.digest(data)), hex(await slow.hash.digest(data)));
    const mac = await slow.hash.mac(key, data);
    assert.equal(hex(await fast.hash.mac(key, data)), hex(mac));
    assert.equal(await fast.hash.verifyMac(key, mac, data), true);
    const bad = mac.slice();
    bad[size % bad.length] ^= 1;
    assert.equal(await fast.hash.verifyMac(key, bad, data), false);
    assert.equal(await fast.hash.verifyMac(key, mac.slice(1), data), false);
    // @hpke/core takes salts of exactly the hash size (all of MLS's are; zeros at the start)
    for (const salt of [random(32), new Uint8Array(32)]) {
      const prk = await slow.kdf.extract(salt, data);
      assert.equal(hex(await fast.kdf.extract(salt, data)), hex(prk));
    }
    const prk = await slow.kdf.extract(random(32), data);
    for (const length of [1, 16, 32, 33, 64, 100]) {
      const info = random(size % 50);
      assert.equal(hex(await fast.kdf.expand(prk, info, length)), hex(await slow.kdf.expand(prk, info, length)));
    }
  }
});
