// End-to-end encryption of one meeting, as one participant sees it (docs/e2ee.md):
// the MLS session (mls.js) driven by the server's delivery-service messages, the SFrame
// worker (transforms.js) fed with each epoch's key, and what the UI shows: the lock, the
// security code, who is verified, and every member who joins.
//
// The server only relays: it tells ONE member (the committer) whom to add or remove
// (`mls_task`), orders the commits (first per epoch wins) and routes Welcomes. Whether a
// person counts as "in the meeting" for the UI comes from the MLS group, never from the
// server's word: a participant the server lists without a valid MLS leaf is "unverified"
// and gets no key.

import { checkInvitationProof, isInvitationKey } from "./invitation.js";
import { fromBase64Url, MlsMember, prepareDeviceKey, toBase64Url } from "./mls.js";
import { mlsBaseKeyLength } from "./sframe.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A User Timing mark of a join step, once per page (`incamera bench join` reports them). */
function mark(name) {
  const entry = `incamera:${name}`;
  if (globalThis.performance?.mark && performance.getEntriesByName(entry).length === 0) performance.mark(entry);
}

/** Runs async jobs one after the other, in order (MLS state changes must not interleave). */
class Queue {
  constructor() {
    this.tail = Promise.resolve();
  }

  run(job) {
    const result = this.tail.then(job);
    this.tail = result.catch((err) => console.warn("incamera e2ee:", err));
    return result;
  }
}

export class E2eeController extends EventTarget {
  /**
   * @param {object} options
   * @param {{request: Function, send: Function}} options.signalling
   * @param {{id: string, name: string}} options.self
   * @param {string} options.groupId  base64url group id from the server's welcome
   * @param {() => Map<string, {name: string, device_key?: string|null}>} options.participants
   *   the server's participant list (the others), consulted for every credential check
   * @param {import("./transforms.js").FrameCrypto} options.frameCrypto
   * @param {() => boolean} [options.isModerator] whether this participant is a moderator now
   * @param {Promise<import("./mls.js").DeviceKey | null> | null} [options.deviceKey] this
   *   participant's device key, made while the page connected (mls.js prepareDeviceKey); made
   *   when needed without one
   */
  constructor({
    signalling,
    self,
    groupId,
    participants,
    frameCrypto,
    isModerator = () => false,
    deviceKey = null,
  }) {
    super();
    this.deviceKey = deviceKey;
    this.signalling = signalling;
    this.self = self;
    this.groupIdText = groupId;
    this.groupId = fromBase64Url(groupId);
    this.isModerator = isModerator;
    this.participants = participants;
    this.frameCrypto = frameCrypto;
    this.member = null;
    this.queue = new Queue();
    this.epoch = null;
    this.code = null;
    this.memberList = [];
    this.known = new Set(); // ids of verified members already announced
    this.failure = null;
    this.removed = false;
    this.chatSeq = 0;
    this.announced = []; // every MLS join shown to this participant, in order: [{name, epoch}]
    this.installed = false; // the first epoch was installed (our own arrival)
    this.policy = null; // the meeting's access policy (lobby: off | guests | everyone)
    // Lobby admissions seen as MLS application messages from verified moderators:
    // participant id -> {by: moderator id}. In a meeting with a lobby, the committer adds a
    // person who had to wait only with one of these, so the server alone cannot admit.
    this.admissions = new Map();
    this.withheld = new Set(); // ids whose key packages this committer left out
    // Personal invitations (invitation.js): keys a moderator shared in the group
    // (key -> expiry, ms), the participants whose proof checked out against one, and the
    // proof last checked per participant.
    this.invitations = new Map();
    this.invited = new Set();
    this.proofsChecked = new Map();
  }

  roster(id) {
    if (id === this.self.id) return { name: this.self.name, deviceKey: this.member?.deviceKey };
    const p = this.participants().get(id);
    if (!p || !p.device_key) return undefined;
    return { name: p.name, deviceKey: p.device_key };
  }

  /** Creates this device's MLS key pair and asks to be added (sends the key package). */
  start() {
    return this.queue.run(() => this.freshMember());
  }

  async freshMember() {
    // One device key for every key package of this participant (the server fixes it at the
    // first one): a key package sent again keeps it.
    let deviceKey = await Promise.resolve(this.deviceKey).catch(() => null);
    if (!deviceKey) {
      this.deviceKey = prepareDeviceKey();
      deviceKey = await this.deviceKey;
    }
    this.member = await MlsMember.create({
      id: this.self.id,
      name: this.self.name,
      roster: (id) => this.roster(id),
      deviceKey,
    });
    mark("key_package_sent");
    await this.signalling.request("mls_key_package", {
      key_package: toBase64Url(this.member.keyPackageBytes),
      device_key: toBase64Url(this.member.deviceKey),
    });
    this.changed();
  }

  /** Handles an E2EE server message; returns false for messages that are not ours. */
  onMessage(message) {
    switch (message.type) {
      case "mls_task":
        this.queue.run(() => this.doTask(message));
        return true;
      case "mls_commit":
        this.queue.run(() => this.applyCommit(message));
        return true;
      case "mls_welcome":
        this.queue.run(() => this.applyWelcome(message));
        return true;
      case "mls_message":
        this.queue.run(() => this.receiveApplication(message));
        return true;
      case "error":
        // The committer left our key package out of its commit: the server dropped it and
        // asks for a new one (docs/protocol.md, "End-to-end encryption").
        if (message.code === "bad_mls" && message.rid == null && this.member?.epoch === null) {
          this.queue.run(() => this.freshMember());
          return true;
        }
        return false;
      default:
        return false;
    }
  }

  async doTask(task) {
    if (!this.member || this.removed) return;
    if (task.create) {
      if (this.member.epoch !== null) return;
      const { groupInfo, ratchetTree } = await this.member.createGroup(this.groupId);
      try {
        await this.signalling.request("mls_create", {
          group_info: toBase64Url(groupInfo),
          ratchet_tree: toBase64Url(ratchetTree),
        });
      } catch (err) {
        // Somebody else created the group first: start over with a fresh key package.
        console.info("incamera e2ee: group creation refused:", err?.code || err);
        await this.freshMember();
        return;
      }
      await this.installEpoch();
      return;
    }
    // A task is for one epoch; one for an epoch we have left (or not reached) is obsolete.
    if (this.member.epoch === null || task.epoch !== this.member.epoch) return;
    const leaves = new Map(this.member.members().map((m) => [m.id, m.leaf]));
    const removeLeaves = (task.remove || [])
      .map((id) => leaves.get(id))
      .filter((leaf) => leaf !== undefined && leaf !== this.member.leafIndex);
    const adds = (task.add || [])
      .map((a) => ({ id: a.participant, bytes: fromBase64Url(a.key_package) }))
      .filter((a) => {
        const ok = this.mayAdd(a.id);
        if (!ok && !this.withheld.has(a.id)) {
          this.withheld.add(a.id);
          console.warn("incamera e2ee: not adding a participant no moderator admitted");
        }
        return ok;
      });
    if (adds.length === 0 && removeLeaves.length === 0 && !task.update) return;
    const output = await this.member.commit({
      adds: adds.map((a) => a.bytes),
      removeLeaves,
      update: Boolean(task.update),
    });
    try {
      await this.signalling.request("mls_commit", {
        commit: toBase64Url(output.commit),
        welcome: output.welcome ? toBase64Url(output.welcome) : null,
        group_info: toBase64Url(output.groupInfo),
        ratchet_tree: toBase64Url(output.ratchetTree),
        added: adds.map((a) => a.id),
        removed: task.remove || [],
      });
    } catch (err) {
      await this.member.discardCommit();
      if (err?.code !== "stale_epoch") console.warn("incamera e2ee: commit refused:", err);
      return;
    }
    await this.member.confirmCommit();
    await this.installEpoch();
  }

  async applyCommit(message) {
    if (!this.member || this.member.epoch === null || this.removed) return;
    if (message.epoch < this.member.epoch) return; // our own, or already applied
    try {
      const { removed } = await this.member.processCommit(fromBase64Url(message.commit));
      if (removed) {
        this.removed = true;
        this.frameCrypto.reset();
        this.changed();
        return;
      }
    } catch (err) {
      this.fail(`a group change could not be applied (${err?.code || err})`);
      return;
    }
    await this.installEpoch();
  }

  async applyWelcome(message) {
    if (!this.member || this.member.epoch !== null) return;
    mark("mls_welcome");
    try {
      await this.member.joinFromWelcome(
        fromBase64Url(message.welcome),
        message.ratchet_tree ? fromBase64Url(message.ratchet_tree) : null,
      );
    } catch (err) {
      this.fail(`the invitation into the encrypted group was not valid (${err?.code || err})`);
      return;
    }
    await this.installEpoch();
  }

  async installEpoch() {
    const member = this.member;
    // sframe_epoch_secret = MLS-Exporter("SFrame 1.0 Base Key", "", AEAD.Nk) (RFC 9605 §5.2)
    const secret = await member.exportSframeEpochSecret(mlsBaseKeyLength());
    this.frameCrypto.installEpoch(member.epoch, secret, member.leafIndex);
    mark("epoch_installed");
    this.epoch = member.epoch;
    this.code = member.securityCode();
    this.failure = null;
    const previous = this.known;
    this.memberList = member.members();
    const verified = this.memberList.filter((m) => m.valid && !m.self);
    const first = !this.installed; // our own arrival: the others were there before us
    this.installed = true;
    const joined = first ? [] : verified.filter((m) => !previous.has(m.id));
    this.known = new Set(verified.map((m) => m.id));
    for (const m of joined) this.announced.push({ name: m.name, epoch: this.epoch });
    if (joined.length > 0 || first) {
      this.dispatchEvent(new CustomEvent("joined", { detail: { names: joined.map((m) => m.name), first } }));
    }
    this.changed();
  }

  fail(reason) {
    console.warn("incamera e2ee:", reason);
    this.failure = reason;
    this.changed();
  }

  changed() {
    if (this.member && this.member.epoch !== null) this.memberList = this.member.members();
    this.dispatchEvent(new Event("change"));
  }

  /** The access policy changed (welcome.policy or a `policy` message). */
  setPolicy(policy) {
    this.policy = policy;
  }

  /**
   * Whether this member, as committer, may add participant `id`: always without a lobby;
   * with one, only moderators (who never wait) and those a verified moderator admitted in
   * an MLS-authenticated message. Someone the server let in on its own gets no keys.
   */
  mayAdd(id) {
    const lobby = this.policy?.lobby ?? "off";
    if (lobby === "off") return true;
    const p = this.participants().get(id);
    if (!p) return false;
    if (p.role === "moderator") return true;
    if (lobby === "guests" && !p.guest) return true;
    return this.admissions.has(id) || this.invited.has(id);
  }

  /**
   * A moderator created a personal invitation whose link carries `key` (invitation.js):
   * share the key with the group (MLS application message), so that every member can check
   * the invited person's proof and let them in although they skip the lobby.
   */
  shareInvitation(key, expiresMs) {
    return this.queue.run(async () => {
      if (!this.member || this.member.epoch === null || this.removed) {
        throw new Error("not in the encrypted group yet");
      }
      this.invitations.set(key, expiresMs);
      const body = { invitation: { key, expires: expiresMs } };
      const bytes = await this.member.encryptApplication(encoder.encode(JSON.stringify(body)));
      await this.signalling.request("mls_message", { message: toBase64Url(bytes) });
    });
  }

  /**
   * Checks the invitation proofs in the server's participant list against the keys this
   * member knows; a proven participant may be added, and a moderator also admits them in
   * the group (so that a committer who does not know the key adds them too).
   */
  checkInvitations() {
    // One check after the other: a caller that awaits sees the outcome of earlier ones.
    const run = (this.invitationChecks ?? Promise.resolve()).then(() => this.checkProofs());
    this.invitationChecks = run.catch(() => {});
    return run;
  }

  async checkProofs() {
    if ((this.policy?.lobby ?? "off") === "off" || this.invitations.size === 0) return;
    const now = Date.now();
    for (const [id, p] of this.participants()) {
      const proof = p.invite_proof;
      if (!proof || this.invited.has(id) || this.proofsChecked.get(id) === proof) continue;
      this.proofsChecked.set(id, proof);
      for (const [key, expires] of this.invitations) {
        if (expires < now) continue;
        if (!(await checkInvitationProof(key, this.groupIdText, id, proof))) continue;
        this.invited.add(id);
        this.withheld.delete(id);
        if (this.isModerator() && !this.admissions.has(id) && !this.verified(id)) {
          await this.admit({ id, name: p.name }).catch((err) => console.warn("incamera e2ee:", err));
        }
        break;
      }
    }
  }

  /** A moderator lets `person` in: tell the group first (authenticated by MLS). */
  admit(person) {
    return this.queue.run(async () => {
      if (!this.member || this.member.epoch === null || this.removed) {
        throw new Error("not in the encrypted group yet");
      }
      this.admissions.set(person.id, { by: this.self.id });
      const body = { admit: { id: person.id, name: person.name } };
      const bytes = await this.member.encryptApplication(encoder.encode(JSON.stringify(body)));
      await this.signalling.request("mls_message", { message: toBase64Url(bytes) });
    });
  }

  /** Sends a chat message as an MLS application message (the server sees ciphertext). */
  sendChat(text) {
    return this.queue.run(async () => {
      if (!this.member || this.member.epoch === null || this.removed) {
        throw new Error("not in the encrypted group yet");
      }
      const ts = Date.now() / 1000;
      const bytes = await this.member.encryptApplication(encoder.encode(JSON.stringify({ chat: text, ts })));
      await this.signalling.request("mls_message", { message: toBase64Url(bytes) });
      return { seq: ++this.chatSeq, from: this.self.id, name: this.self.name, text, ts };
    });
  }

  async receiveApplication(message) {
    if (!this.member || this.member.epoch === null || this.removed) return;
    let decrypted;
    try {
      decrypted = await this.member.decryptApplication(fromBase64Url(message.message));
    } catch (err) {
      console.warn("incamera e2ee: an encrypted message could not be read:", err?.code || err);
      return;
    }
    let body;
    try {
      body = JSON.parse(decoder.decode(decrypted.data));
    } catch {
      return;
    }
    if (!decrypted.sender?.valid) return;
    if (body?.invitation && isInvitationKey(body.invitation.key)) {
      // Only a moderator's invitation counts, like an admission.
      const sender = this.participants().get(decrypted.sender.id);
      if (sender?.role === "moderator" && typeof body.invitation.expires === "number") {
        this.invitations.set(body.invitation.key, body.invitation.expires);
        this.proofsChecked.clear(); // check the proofs already there against the new key
        this.checkInvitations().catch((err) => console.warn("incamera e2ee:", err));
      }
      return;
    }
    if (body?.admit && typeof body.admit.id === "string") {
      // Only a moderator's admission counts (the role is the server's word; the
      // authorship is MLS's: the server cannot make one up).
      const sender = this.participants().get(decrypted.sender.id);
      if (sender?.role === "moderator") {
        this.admissions.set(body.admit.id, { by: decrypted.sender.id });
        this.withheld.delete(body.admit.id);
      }
      return;
    }
    if (typeof body?.chat !== "string") return;
    const chat = {
      seq: ++this.chatSeq,
      from: decrypted.sender.id,
      name: decrypted.sender.name,
      text: body.chat.slice(0, 2000),
      ts: typeof body.ts === "number" ? body.ts : Date.now() / 1000,
    };
    this.dispatchEvent(new CustomEvent("chat", { detail: chat }));
  }

  /** Whether the server-listed participant `id` is a verified member of the MLS group. */
  verified(id) {
    return this.memberList.some((m) => m.id === id && m.valid);
  }

  /** window.incamera.e2ee(): {enabled, epoch, securityCode, members: [{id, name, verified}]}. */
  status() {
    return {
      enabled: true,
      epoch: this.epoch,
      securityCode: this.code,
      leaf: this.member?.leafIndex ?? null,
      removed: this.removed,
      failure: this.failure,
      announced: this.announced.slice(),
      members: this.memberList.map((m) => ({ id: m.id, name: m.name, verified: m.valid, leaf: m.leaf, self: m.self })),
    };
  }

  close() {
    this.frameCrypto.reset();
  }
}
