// node --test tests/js/invitation.test.mjs — personal invitations in an encrypted meeting with a
// lobby: the HMAC proof of src/incamera/web/e2ee/invitation.js, and the E2EE controller
// (web/e2ee/controller.js) over real MLS sessions: a moderator shares an invitation key in the
// group, another member then adds the invited participant only with a valid proof; a proof the
// server makes up (without the key), one for another participant, or a key shared by a
// non-moderator does not count; a moderator who checks a valid proof admits the participant.
import assert from "node:assert/strict";
import { test } from "node:test";

import { E2eeController } from "../../src/incamera/web/e2ee/controller.js";
import {
  checkInvitationProof,
  invitationProof,
  isInvitationKey,
  newInvitationKey,
} from "../../src/incamera/web/e2ee/invitation.js";
import { fromBase64Url, toBase64Url } from "../../src/incamera/web/e2ee/mls.js";

const GROUP = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));

test("a proof checks only with its key, group and participant", async () => {
  const key = newInvitationKey();
  assert.ok(isInvitationKey(key));
  assert.equal(fromBase64Url(key).length, 16);
  const proof = await invitationProof(key, GROUP, "p-ines");
  assert.match(proof, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(await checkInvitationProof(key, GROUP, "p-ines", proof), true);
  assert.equal(await checkInvitationProof(newInvitationKey(), GROUP, "p-ines", proof), false);
  assert.equal(await checkInvitationProof(key, GROUP, "p-other", proof), false);
  const otherGroup = toBase64Url(crypto.getRandomValues(new Uint8Array(16)));
  assert.equal(await checkInvitationProof(key, otherGroup, "p-ines", proof), false);
});

test("malformed proofs and keys are refused, never thrown", async () => {
  const key = newInvitationKey();
  for (const bad of ["", "AAAA", "!".repeat(43), "A".repeat(44), toBase64Url(new Uint8Array(31))]) {
    assert.equal(await checkInvitationProof(key, GROUP, "p", bad), false, bad);
  }
  for (const bad of [null, 7, "", "A".repeat(21), "A".repeat(23), "+".repeat(22)]) {
    assert.equal(isInvitationKey(bad), false, String(bad));
  }
});

// -- the controller over real MLS -------------------------------------------------------------

/** What the controller needs from the signalling connection: requests are recorded. */
class FakeSignalling {
  constructor() {
    this.requests = [];
  }
  async request(type, fields) {
    this.requests.push({ type, ...fields });
    return {};
  }
  send() {}
  last(type) {
    return this.requests.filter((r) => r.type === type).at(-1);
  }
}

const frameCrypto = { installEpoch() {}, reset() {} };

/** One browser: a controller with its own view of the server's participant list. */
function browser(id, name, everyone, roles) {
  const signalling = new FakeSignalling();
  const participants = () =>
    new Map(
      [...everyone.values()]
        .filter((p) => p.id !== id)
        .map((p) => [p.id, { ...p, role: roles.get(p.id) ?? "participant" }]),
    );
  const controller = new E2eeController({
    signalling,
    self: { id, name },
    groupId: GROUP,
    participants,
    frameCrypto,
    isModerator: () => roles.get(id) === "moderator",
  });
  return { id, name, signalling, controller };
}

async function started(b, everyone) {
  await b.controller.start();
  const kp = b.signalling.last("mls_key_package");
  everyone.set(b.id, { id: b.id, name: b.name, device_key: kp.device_key, guest: true });
  return kp;
}

test("a member adds an invited participant only with a proof of a moderator's key", async () => {
  const everyone = new Map();
  const roles = new Map([["mo", "moderator"]]);
  const mo = browser("mo", "Mo", everyone, roles);
  const cy = browser("cy", "Cy", everyone, roles); // a participant; the committer below
  await started(mo, everyone);
  const cyKp = await started(cy, everyone);
  await mo.controller.doTask({ create: true });
  assert.equal(mo.controller.epoch, 0);
  mo.controller.setPolicy({ lobby: "off" });
  await mo.controller.doTask({ epoch: 0, add: [{ participant: "cy", key_package: cyKp.key_package }] });
  const commit = mo.signalling.last("mls_commit");
  assert.deepEqual(commit.added, ["cy"]);
  await cy.controller.applyWelcome({ welcome: commit.welcome, ratchet_tree: commit.ratchet_tree });
  assert.equal(cy.controller.epoch, 1);
  for (const b of [mo, cy]) b.controller.setPolicy({ lobby: "everyone" });

  // Ines skips the lobby with an invitation: the server lists her with a proof.
  const ines = browser("ines", "Ines", everyone, roles);
  const inesKp = await started(ines, everyone);
  const key = newInvitationKey();
  const proof = await invitationProof(key, GROUP, "ines");
  everyone.get("ines").invite_proof = proof;
  assert.equal(cy.controller.mayAdd("ines"), false); // no key known yet

  // A key "shared" by a participant does not count; a moderator's does.
  await cy.controller.shareInvitation(newInvitationKey(), Date.now() + 60_000);
  const fromCy = cy.signalling.last("mls_message");
  await mo.controller.receiveApplication(fromCy);
  assert.equal(mo.controller.invitations.size, 0);
  await mo.controller.shareInvitation(key, Date.now() + 60_000);
  await cy.controller.receiveApplication(mo.signalling.last("mls_message"));
  await cy.controller.checkInvitations();
  assert.equal(cy.controller.mayAdd("ines"), true);

  // As committer Cy adds Ines (and nobody else the server lists without a proof).
  const eve = browser("eve", "Eve", everyone, roles);
  const eveKp = await started(eve, everyone);
  everyone.get("eve").invite_proof = await invitationProof(newInvitationKey(), GROUP, "eve");
  const stolen = browser("mal", "Mal", everyone, roles);
  const malKp = await started(stolen, everyone);
  everyone.get("mal").invite_proof = proof; // Ines's proof, replayed for another participant
  await cy.controller.checkInvitations();
  await cy.controller.doTask({
    epoch: 1,
    add: [
      { participant: "ines", key_package: inesKp.key_package },
      { participant: "eve", key_package: eveKp.key_package },
      { participant: "mal", key_package: malKp.key_package },
    ],
  });
  const added = cy.signalling.last("mls_commit");
  assert.deepEqual(added.added, ["ines"]);
  await ines.controller.applyWelcome({ welcome: added.welcome, ratchet_tree: added.ratchet_tree });
  assert.equal(ines.controller.epoch, 2);
  await mo.controller.applyCommit({ epoch: 1, commit: added.commit });
  assert.equal(mo.controller.code, ines.controller.code);
  assert.ok(mo.controller.verified("ines"));
});

test("a moderator who checks a valid proof admits the participant in the group", async () => {
  const everyone = new Map();
  const roles = new Map([["mo", "moderator"]]);
  const mo = browser("mo", "Mo", everyone, roles);
  await started(mo, everyone);
  await mo.controller.doTask({ create: true });
  mo.controller.setPolicy({ lobby: "everyone" });
  const key = newInvitationKey();
  await mo.controller.shareInvitation(key, Date.now() + 60_000);
  const shared = mo.signalling.requests.length;
  const ines = browser("ines", "Ines", everyone, roles);
  await started(ines, everyone);
  everyone.get("ines").invite_proof = await invitationProof(key, GROUP, "ines");
  await mo.controller.checkInvitations();
  await mo.controller.queue.tail;
  const sent = mo.signalling.requests.slice(shared).filter((r) => r.type === "mls_message");
  assert.equal(sent.length, 1); // the MLS admission of Ines
  assert.ok(mo.controller.admissions.has("ines"));
  // An expired key proves nothing.
  const late = browser("late", "Late", everyone, roles);
  await started(late, everyone);
  const oldKey = newInvitationKey();
  mo.controller.invitations.set(oldKey, Date.now() - 1);
  everyone.get("late").invite_proof = await invitationProof(oldKey, GROUP, "late");
  await mo.controller.checkInvitations();
  assert.equal(mo.controller.mayAdd("late"), false);
});

test("a key package sent again (the committer left the first out) keeps the device key", async () => {
  const everyone = new Map();
  const roles = new Map();
  const dan = browser("dan", "Dan", everyone, roles);
  const first = await started(dan, everyone);
  // The server dropped the key package and asks for a new one (an error without rid).
  assert.equal(dan.controller.onMessage({ type: "error", code: "bad_mls", rid: null }), true);
  await dan.controller.queue.tail;
  const kps = dan.signalling.requests.filter((r) => r.type === "mls_key_package");
  assert.equal(kps.length, 2);
  assert.equal(kps[1].device_key, first.device_key); // the server refuses a changed device key
  assert.notEqual(kps[1].key_package, first.key_package);
});
