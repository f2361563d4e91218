// One participant's MLS (RFC 9420) session over the vendored ts-mls bundle, with incamera's
// authentication service. Runs in the browser and in Node 20 (tests, `incamera bench e2ee`).
//
// Cipher suite 1, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519. Byte formats (all exactly as
// RFC 9420 defines them, so the server can read the clear framing):
//   keyPackageBytes        MLSMessage, wire_format mls_key_package (§6, §10)
//   commit                 MLSMessage, wire_format mls_private_message, content_type commit (§6.3)
//   welcome                MLSMessage, wire_format mls_welcome (§12.4.3.1)
//   groupInfo              MLSMessage, wire_format mls_group_info (§12.4.3), with external_pub
//   ratchetTree            the ratchet_tree extension's content, `optional<Node> ratchet_tree<V>`
//                          (§12.4.3.3), not wrapped in an MLSMessage
//   application messages   MLSMessage, wire_format mls_private_message, content_type application
//
// Authentication service (docs: e2ee-protocol, "Credential / authentication service"): a leaf is
// valid only if its BasicCredential identity is the canonical UTF-8 JSON
// {"v":1,"id":"<participant id>","name":"<display name>"}, the roster callback knows that id
// with that name, and the leaf's signature public key is that participant's device key.

import * as M from "../vendor/ts-mls.js";

export const CIPHER_SUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";
export const SFRAME_EXPORTER_LABEL = "SFrame 1.0 Base Key";
export const SFRAME_EPOCH_SECRET_LENGTH = 32; // the agreed design (e2ee-protocol); RFC 9605 §5.2 says AEAD.Nk

/**
 * @typedef {{name: string, deviceKey: Uint8Array | string}} RosterEntry
 *   deviceKey: the participant's MLS signature public key, raw or base64url (no padding).
 * @typedef {(id: string) => RosterEntry | undefined | null} Roster
 * @typedef {{leaf: number, id: string | null, name: string | null, signatureKey: Uint8Array,
 *   valid: boolean, self: boolean}} Member
 * @typedef {{commit: Uint8Array, welcome: Uint8Array | null, groupInfo: Uint8Array,
 *   ratchetTree: Uint8Array, epoch: number}} CommitOutput
 *   epoch: the epoch the commit moves the group FROM (the server's current epoch).
 * @typedef {{data: Uint8Array, sender: Member, epoch: number}} ApplicationMessage
 */

/**
 * Why an operation failed. `code` is one of:
 * - "bad_mls": the bytes are not the MLS message expected here (malformed, wrong wire format
 *   or content type, trailing bytes);
 * - "wrong_group": the message belongs to another group;
 * - "stale_epoch": a commit for an epoch this member has already left (another commit won);
 * - "future_epoch": a message for an epoch this member has not reached (a commit was missed);
 * - "rejected": the message failed verification (signature, confirmation tag, an invalid
 *   credential per the roster, a tree that does not validate, a Welcome not for us);
 * - "removed": this member has been removed from the group;
 * - "no_group": no group joined or created yet; "in_group": createGroup/joinFromWelcome twice;
 * - "pending_commit" / "no_pending_commit": commit() called twice / confirm without commit.
 */
export class MlsSessionError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {unknown} [cause]
   */
  constructor(code, message, cause) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "MlsSessionError";
    this.code = code;
  }
}

// -- credentials ---------------------------------------------------------------------------------

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The canonical identity bytes of a participant's BasicCredential.
 * @param {{id: string, name: string}} who
 * @returns {Uint8Array}
 */
export function encodeIdentity({ id, name }) {
  if (typeof id !== "string" || typeof name !== "string") throw new TypeError("id and name must be strings");
  return encoder.encode(JSON.stringify({ v: 1, id, name }));
}

/**
 * Reads identity bytes; null unless they are exactly the canonical encoding.
 * @param {Uint8Array} bytes
 * @returns {{id: string, name: string} | null}
 */
export function parseIdentity(bytes) {
  let value;
  try {
    value = JSON.parse(strictDecoder.decode(bytes));
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  if (value.v !== 1 || typeof value.id !== "string" || typeof value.name !== "string") return null;
  const who = { id: value.id, name: value.name };
  return bytesEqual(encodeIdentity(who), bytes) ? who : null;
}

// -- bytes ----------------------------------------------------------------------------------------

/**
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** @param {Uint8Array} bytes base64url without padding (the signalling encoding) */
export function toBase64Url(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** @param {string} text base64url, padding optional; throws TypeError when malformed */
export function fromBase64Url(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new TypeError("not base64url");
  }
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** @param {Uint8Array | string} key */
function keyBytes(key) {
  return typeof key === "string" ? fromBase64Url(key) : key;
}

// -- MLS framing ----------------------------------------------------------------------------------

/** @type {Promise<any> | undefined} */
let suitePromise;
function cipherSuite() {
  suitePromise ??= M.getCiphersuiteImpl(M.getCiphersuiteFromName(CIPHER_SUITE)).then(fastHashing);
  return suitePromise;
}

/**
 * The cipher suite with its hash (SHA-256, HMAC) and KDF (HKDF-SHA256) computed synchronously
 * by @noble/hashes (audited, bundled) instead of WebCrypto. Same functions, same results
 * (tests/js/mls.test.mjs compares them); the reason is speed: every WebCrypto call is an
 * asynchronous round trip to another thread (and an importKey for each HMAC), which costs
 * far more than hashing a few dozen bytes, and an epoch change derives the whole secret tree:
 * about 3,000 HMACs and 1,000 digests at 500 members, most of a joiner's wait. HPKE,
 * signatures and AEAD stay on WebCrypto.
 */
export function fastHashing(cs) {
  const tag = (key, data) => M.hmac(M.sha256, key, data);
  return {
    ...cs,
    hash: {
      digest: async (data) => M.sha256(data),
      mac: async (key, data) => tag(key, data),
      verifyMac: async (key, mac, data) => constantTimeEqual(tag(key, data), mac),
    },
    kdf: {
      extract: async (salt, ikm) => M.hkdfExtract(M.sha256, ikm, salt),
      expand: async (prk, info, length) => M.hkdfExpand(M.sha256, prk, info, length),
      size: cs.kdf.size,
    },
  };
}

/** Equal length and bytes, in time that depends only on the length. */
function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * Decodes one whole MLSMessage (no trailing bytes) of one of the given wire formats.
 * @param {Uint8Array} bytes
 * @param {...string} wireformats
 * @returns {any}
 */
function decodeMessage(bytes, ...wireformats) {
  if (!(bytes instanceof Uint8Array)) throw new MlsSessionError("bad_mls", "expected bytes");
  let decoded;
  try {
    decoded = M.decodeMlsMessage(bytes, 0);
  } catch (error) {
    throw new MlsSessionError("bad_mls", "malformed MLSMessage", error);
  }
  if (decoded === undefined || decoded[1] !== bytes.length) {
    throw new MlsSessionError("bad_mls", "malformed MLSMessage");
  }
  const message = decoded[0];
  if (message.version !== "mls10") throw new MlsSessionError("bad_mls", "not MLS 1.0");
  if (!wireformats.includes(message.wireformat)) {
    throw new MlsSessionError("bad_mls", `expected ${wireformats.join(" or ")}, got ${message.wireformat}`);
  }
  return message;
}

/** @param {object} content */
function encodeMessage(content) {
  return M.encodeMlsMessage({ version: "mls10", ...content });
}

/** @param {Uint8Array[]} secrets */
function zeroAll(secrets) {
  for (const secret of secrets) M.zeroOutUint8Array(secret);
}

// -- the device key -------------------------------------------------------------------------------

/**
 * A participant's MLS signature key pair (its device key), made before the participant id is
 * known: the key pair does not depend on it, so the page makes it (and warms up the cipher
 * suite) while it connects, and after the server's `welcome` only the key package's two
 * signatures remain (MlsMember.create). Key packages sent again for the same participant
 * (one the committer left out, a lost race to create the group) keep it: the server fixes a
 * participant's device key at the first key package. The private key is a private field, so
 * the object serialises (JSON, structured clone of its fields) to the public key only.
 */
export class DeviceKey {
  #signKey;

  /** @param {{signKey: Uint8Array, publicKey: Uint8Array}} pair */
  constructor({ signKey, publicKey }) {
    this.#signKey = signKey;
    /** @type {Uint8Array} the Ed25519 public key (the `device_key`) */
    this.publicKey = publicKey;
  }

  /** ts-mls's SignatureKeyPair, for generateKeyPackageWithKey. */
  pair() {
    return { signKey: this.#signKey, publicKey: this.publicKey.slice() };
  }
}

/**
 * A fresh device key (see DeviceKey).
 * @returns {Promise<DeviceKey>}
 */
export async function prepareDeviceKey() {
  const cs = await cipherSuite();
  return new DeviceKey(await cs.signature.keygen());
}

// -- the session ----------------------------------------------------------------------------------

export class MlsMember {
  /** @type {any} */ #cs;
  /** @type {any} */ #keyPackage;
  /** @type {any} */ #privatePackage;
  /** @type {any} */ #config;
  /** @type {any} */ #state = null; // ts-mls ClientState of the confirmed epoch
  /** @type {any} */ #pending = null; // createCommit result until confirmCommit/discardCommit
  /** @type {Roster} */ #roster;
  /** @type {Promise<unknown>} */ #queue = Promise.resolve();

  /**
   * Use MlsMember.create().
   * @param {{id: string, name: string, roster: Roster, rejectInvalid: boolean, cs: any,
   *   keyPackage: any, privatePackage: any}} init
   */
  constructor(init) {
    this.id = init.id;
    this.name = init.name;
    this.rejectInvalid = init.rejectInvalid;
    this.#roster = init.roster;
    this.#cs = init.cs;
    this.#keyPackage = init.keyPackage;
    this.#privatePackage = init.privatePackage;
    const authService = {
      validateCredential: async (/** @type {any} */ credential, /** @type {Uint8Array} */ key) =>
        !this.rejectInvalid || this.#credentialValid(credential, key),
    };
    this.#config = { ...M.defaultClientConfig, authService };
  }

  /**
   * A new member with a fresh key package (one per meeting join), signed by `deviceKey`, or by
   * a fresh signature key pair without one.
   * @param {{id: string, name: string, roster: Roster, rejectInvalid?: boolean,
   *   deviceKey?: DeviceKey | null}} options
   *   roster: the server's participant list, consulted on every credential check.
   *   rejectInvalid (default true): refuse Welcomes and commits that bring in a leaf the roster
   *   does not vouch for; with false they are accepted and only marked valid:false in members().
   *   deviceKey: from prepareDeviceKey(), made ahead of time (the credential, which names the
   *   participant id and name, is made and signed here all the same).
   * @returns {Promise<MlsMember>}
   */
  static async create({ id, name, roster, rejectInvalid = true, deviceKey = null }) {
    if (typeof roster !== "function") throw new TypeError("roster must be a function");
    if (deviceKey !== null && !(deviceKey instanceof DeviceKey)) {
      throw new TypeError("deviceKey must be a DeviceKey");
    }
    const cs = await cipherSuite();
    const credential = { credentialType: "basic", identity: encodeIdentity({ id, name }) };
    const capabilities = M.defaultCapabilities();
    const lifetime = M.defaultLifetime;
    const { publicPackage, privatePackage } =
      deviceKey === null
        ? await M.generateKeyPackage(credential, capabilities, lifetime, [], cs)
        : await M.generateKeyPackageWithKey(credential, capabilities, lifetime, [], deviceKey.pair(), cs);
    return new MlsMember({ id, name, roster, rejectInvalid, cs, keyPackage: publicPackage, privatePackage });
  }

  /** Replaces the roster callback (the participant list changed hands, e.g. after a reconnect). */
  setRoster(/** @type {Roster} */ roster) {
    this.#roster = roster;
  }

  /** MLSMessage(mls_key_package) to send with `mls_key_package`. */
  get keyPackageBytes() {
    return encodeMessage({ wireformat: "mls_key_package", keyPackage: this.#keyPackage });
  }

  /** This member's signature public key (32 bytes, Ed25519): the `device_key`. */
  get deviceKey() {
    return this.#keyPackage.leafNode.signaturePublicKey.slice();
  }

  /** The confirmed epoch, or null before a group is created or joined. */
  get epoch() {
    return this.#state === null ? null : Number(this.#state.groupContext.epoch);
  }

  /** Own leaf index, or null before a group is created or joined. */
  get leafIndex() {
    return this.#state === null ? null : this.#state.privatePath.leafIndex;
  }

  /** @returns {Uint8Array | null} */
  get groupId() {
    return this.#state === null ? null : this.#state.groupContext.groupId.slice();
  }

  /** True once a commit that removes this member has been processed. */
  get removed() {
    return this.#state !== null && this.#state.groupActiveState.kind === "removedFromGroup";
  }

  get hasPendingCommit() {
    return this.#pending !== null;
  }

  /**
   * Runs one state-changing operation at a time, in call order.
   * @template T
   * @param {() => Promise<T>} operation
   * @returns {Promise<T>}
   */
  #serial(operation) {
    const result = this.#queue.then(operation);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  #activeState() {
    if (this.#state === null) throw new MlsSessionError("no_group", "not in a group");
    if (this.removed) throw new MlsSessionError("removed", "removed from the group");
    return this.#state;
  }

  /**
   * Our authentication service (see the file comment).
   * @param {any} credential
   * @param {Uint8Array} signatureKey
   */
  #credentialValid(credential, signatureKey) {
    if (credential?.credentialType !== "basic") return false;
    const who = parseIdentity(credential.identity);
    if (who === null) return false;
    if (who.id === this.id && bytesEqual(signatureKey, this.#keyPackage.leafNode.signaturePublicKey)) {
      return who.name === this.name;
    }
    let entry;
    try {
      entry = this.#roster(who.id);
      if (entry === undefined || entry === null || entry.deviceKey === null || entry.deviceKey === undefined) {
        return false;
      }
      return entry.name === who.name && bytesEqual(keyBytes(entry.deviceKey), signatureKey);
    } catch {
      return false;
    }
  }

  async #publicGroupState(/** @type {any} */ state) {
    const groupInfo = await M.createGroupInfoWithExternalPub(state, [], this.#cs);
    return {
      groupInfo: encodeMessage({ wireformat: "mls_group_info", groupInfo }),
      ratchetTree: M.encodeRatchetTree(state.ratchetTree),
    };
  }

  /**
   * Creates the group at epoch 0 with this member alone (for `mls_create`).
   * @param {Uint8Array} groupId
   * @returns {Promise<{groupInfo: Uint8Array, ratchetTree: Uint8Array}>}
   */
  createGroup(groupId) {
    return this.#serial(async () => {
      if (this.#state !== null) throw new MlsSessionError("in_group", "already in a group");
      const state = await M.createGroup(groupId, this.#keyPackage, this.#privatePackage, [], this.#cs, this.#config);
      this.#state = state;
      return this.#publicGroupState(state);
    });
  }

  /**
   * Prepares one commit: adds (MLSMessage key packages, all in this one commit), removes (leaf
   * indexes), or with neither and update:true an empty commit that refreshes this member's
   * path. Adds alone carry no update path (RFC 9420 §12.4: path optional); removes always do.
   * The commit stays pending: confirmCommit() when the server accepts it, discardCommit() on
   * stale_epoch. processCommit() of another member's commit discards it too.
   * @param {{adds?: Uint8Array[], removeLeaves?: number[], update?: boolean}} request
   * @returns {Promise<CommitOutput>}
   */
  commit({ adds = [], removeLeaves = [], update = false }) {
    return this.#serial(async () => {
      const state = this.#activeState();
      if (this.#pending !== null) throw new MlsSessionError("pending_commit", "a commit is already pending");
      if (adds.length === 0 && removeLeaves.length === 0 && !update) {
        throw new TypeError("nothing to commit");
      }
      const proposals = [];
      for (const bytes of adds) {
        const { keyPackage } = decodeMessage(bytes, "mls_key_package");
        proposals.push({ proposalType: "add", add: { keyPackage } });
      }
      for (const leaf of removeLeaves) {
        if (!Number.isInteger(leaf) || leaf < 0) throw new TypeError(`bad leaf index ${leaf}`);
        proposals.push({ proposalType: "remove", remove: { removed: leaf } });
      }
      let result;
      try {
        result = await M.createCommit({ state, cipherSuite: this.#cs }, { extraProposals: proposals });
      } catch (error) {
        throw new MlsSessionError("rejected", `cannot commit: ${errorText(error)}`, error);
      }
      this.#pending = { ...result, baseState: state };
      const { groupInfo, ratchetTree } = await this.#publicGroupState(result.newState);
      return {
        commit: M.encodeMlsMessage(result.commit),
        welcome:
          result.welcome === undefined ? null : encodeMessage({ wireformat: "mls_welcome", welcome: result.welcome }),
        groupInfo,
        ratchetTree,
        epoch: Number(state.groupContext.epoch),
      };
    });
  }

  /** The server accepted the pending commit: move to its epoch. */
  confirmCommit() {
    return this.#serial(async () => {
      if (this.#pending === null) throw new MlsSessionError("no_pending_commit", "no commit pending");
      const { newState, consumed, baseState } = this.#pending;
      this.#pending = null;
      if (this.#state !== baseState) {
        // Application messages were sent or received while the commit was pending: keep the
        // old epoch's receive ratchet as it is now, not as it was when the commit was made.
        const receiverData = new Map(newState.historicalReceiverData);
        const epoch = baseState.groupContext.epoch;
        const old = receiverData.get(epoch);
        if (old !== undefined) receiverData.set(epoch, { ...old, secretTree: this.#state.secretTree });
        this.#state = { ...newState, historicalReceiverData: receiverData };
      } else {
        this.#state = newState;
      }
      zeroAll(consumed);
    });
  }

  /** The server refused the pending commit (stale_epoch): forget it, stay in the epoch. */
  discardCommit() {
    return this.#serial(async () => {
      this.#pending = null;
    });
  }

  /**
   * Applies another member's commit (`mls_commit`). A pending commit of ours is discarded: the
   * server accepts one commit per epoch, and this one came first.
   * @param {Uint8Array} bytes MLSMessage (private or public message) with content type commit
   * @returns {Promise<{epoch: number, removed: boolean}>} the new epoch; removed = this member
   *   was removed by the commit (it then stays in the old epoch, unable to derive the new one)
   */
  processCommit(bytes) {
    return this.#serial(async () => {
      const state = this.#activeState();
      const message = decodeMessage(bytes, "mls_private_message", "mls_public_message");
      const framing = message.wireformat === "mls_private_message" ? message.privateMessage : message.publicMessage.content;
      if (framing.contentType !== "commit") throw new MlsSessionError("bad_mls", "not a commit");
      checkGroupAndEpoch(state, framing);
      let result;
      try {
        result =
          message.wireformat === "mls_private_message"
            ? await M.processPrivateMessage(state, message.privateMessage, M.emptyPskIndex, this.#cs)
            : await M.processPublicMessage(state, message.publicMessage, M.emptyPskIndex, this.#cs);
      } catch (error) {
        throw new MlsSessionError("rejected", `commit rejected: ${errorText(error)}`, error);
      }
      this.#pending = null;
      this.#state = result.newState;
      zeroAll(result.consumed);
      return { epoch: Number(result.newState.groupContext.epoch), removed: this.removed };
    });
  }

  /**
   * Joins from `mls_welcome`. The ratchet tree (the server's copy) is checked against the
   * GroupInfo's tree hash, and every leaf in it against the authentication service.
   * @param {Uint8Array} welcomeBytes MLSMessage(mls_welcome)
   * @param {Uint8Array | null} [ratchetTreeBytes] ratchet_tree content; null if the Welcome
   *   carries the ratchet_tree extension
   * @returns {Promise<{epoch: number, leafIndex: number}>}
   */
  joinFromWelcome(welcomeBytes, ratchetTreeBytes = null) {
    return this.#serial(async () => {
      if (this.#state !== null) throw new MlsSessionError("in_group", "already in a group");
      const { welcome } = decodeMessage(welcomeBytes, "mls_welcome");
      let tree;
      if (ratchetTreeBytes !== null) {
        let decoded;
        try {
          decoded = M.decodeRatchetTree(ratchetTreeBytes, 0);
        } catch (error) {
          throw new MlsSessionError("bad_mls", "malformed ratchet tree", error);
        }
        if (decoded === undefined || decoded[1] !== ratchetTreeBytes.length) {
          throw new MlsSessionError("bad_mls", "malformed ratchet tree");
        }
        tree = decoded[0];
      }
      let state;
      try {
        state = await M.joinGroup(
          welcome,
          this.#keyPackage,
          this.#privatePackage,
          M.emptyPskIndex,
          this.#cs,
          tree,
          undefined,
          this.#config,
        );
      } catch (error) {
        throw new MlsSessionError("rejected", `welcome rejected: ${errorText(error)}`, error);
      }
      this.#state = state;
      return { epoch: Number(state.groupContext.epoch), leafIndex: state.privatePath.leafIndex };
    });
  }

  /**
   * The group's leaves in the confirmed epoch, each checked against the roster now.
   * @returns {Member[]}
   */
  members() {
    if (this.#state === null) return [];
    return treeMembers(this.#state.ratchetTree, this.leafIndex, (credential, key) =>
      this.#credentialValid(credential, key),
    );
  }

  /**
   * MLS-Exporter("SFrame 1.0 Base Key", "", length) of the confirmed epoch (RFC 9605 §5.2).
   * The default length, 32, is the agreed design's; RFC 9605 §5.2 exports AEAD.Nk bytes
   * (16 for suite 0x0004) and uses them as the base_key: pass that length to follow it.
   * @param {number} [length]
   * @returns {Promise<Uint8Array>}
   */
  async exportSframeEpochSecret(length = SFRAME_EPOCH_SECRET_LENGTH) {
    const state = this.#activeState();
    if (!Number.isInteger(length) || length < 1 || length > 255 * 32) throw new RangeError("bad length");
    return M.mlsExporter(state.keySchedule.exporterSecret, SFRAME_EXPORTER_LABEL, new Uint8Array(0), length, this.#cs);
  }

  /**
   * The confirmed epoch's epoch_authenticator (RFC 9420 §8.7), 32 bytes.
   * @returns {Promise<Uint8Array>}
   */
  async epochAuthenticator() {
    return this.#activeState().keySchedule.epochAuthenticator.slice();
  }

  /**
   * The meeting's security code for the confirmed epoch: 20 decimal digits in 4 groups of 5,
   * equal for every member of the same group in the same epoch. Derivation: bytes 0..19 of the
   * epoch authenticator in 4 chunks of 5 bytes; each chunk, read as a 40-bit big-endian
   * unsigned integer, modulo 100000, zero-padded to 5 digits; groups joined by single spaces.
   * (2^40 is not a multiple of 10^5; the resulting bias is below 10^-7 per digit group.)
   * @returns {string}
   */
  securityCode() {
    return securityCodeFrom(this.#activeState().keySchedule.epochAuthenticator);
  }

  /**
   * Encrypts an application message (chat) for the group in the confirmed epoch.
   * @param {Uint8Array} bytes
   * @returns {Promise<Uint8Array>} MLSMessage(mls_private_message, content type application)
   */
  encryptApplication(bytes) {
    return this.#serial(async () => {
      const state = this.#activeState();
      const { newState, privateMessage, consumed } = await M.createApplicationMessage(state, bytes, this.#cs);
      this.#state = newState;
      zeroAll(consumed);
      return encodeMessage({ wireformat: "mls_private_message", privateMessage });
    });
  }

  /**
   * Decrypts another member's application message, from the confirmed epoch or one of the
   * few before it (ts-mls keeps 4). The sender is the leaf whose signature verified, so
   * `sender.id` is authenticated by MLS (and `sender.valid` says whether the roster vouches
   * for it now).
   * @param {Uint8Array} bytes MLSMessage(mls_private_message, content type application)
   * @returns {Promise<ApplicationMessage>}
   */
  decryptApplication(bytes) {
    return this.#serial(async () => {
      const state = this.#activeState();
      const { privateMessage } = decodeMessage(bytes, "mls_private_message");
      if (privateMessage.contentType !== "application") throw new MlsSessionError("bad_mls", "not an application message");
      checkGroupAndEpoch(state, privateMessage, true);
      const historical = privateMessage.epoch < state.groupContext.epoch;
      const epochData = historical ? state.historicalReceiverData.get(privateMessage.epoch) : state;
      if (epochData === undefined) throw new MlsSessionError("stale_epoch", "epoch no longer held");
      const senderDataSecret = historical ? epochData.senderDataSecret : state.keySchedule.senderDataSecret;
      let result;
      try {
        result = await M.unprotectPrivateMessage(
          senderDataSecret,
          privateMessage,
          epochData.secretTree,
          epochData.ratchetTree,
          epochData.groupContext,
          state.clientConfig.keyRetentionConfig,
          this.#cs,
        );
      } catch (error) {
        throw new MlsSessionError("rejected", `message rejected: ${errorText(error)}`, error);
      }
      if (result.content.content.contentType !== "application") throw new MlsSessionError("bad_mls", "not application");
      if (historical) {
        const receiverData = new Map(state.historicalReceiverData);
        receiverData.set(privateMessage.epoch, { ...epochData, secretTree: result.tree });
        this.#state = { ...state, historicalReceiverData: receiverData };
      } else {
        this.#state = { ...state, secretTree: result.tree };
      }
      zeroAll(result.consumed);
      const senderLeaf = result.content.content.sender.leafIndex;
      const sender = treeMembers(epochData.ratchetTree, this.leafIndex, (credential, key) =>
        this.#credentialValid(credential, key),
      ).find((member) => member.leaf === senderLeaf);
      if (sender === undefined) throw new MlsSessionError("rejected", "sender leaf is blank");
      return {
        data: result.content.content.applicationData,
        sender,
        epoch: Number(privateMessage.epoch),
      };
    });
  }
}

// -- helpers --------------------------------------------------------------------------------------

/**
 * @param {any} state
 * @param {{groupId: Uint8Array, epoch: bigint}} framing
 * @param {boolean} [olderAllowed]
 */
function checkGroupAndEpoch(state, framing, olderAllowed = false) {
  if (!bytesEqual(framing.groupId, state.groupContext.groupId)) {
    throw new MlsSessionError("wrong_group", "message for another group");
  }
  if (framing.epoch > state.groupContext.epoch) {
    throw new MlsSessionError("future_epoch", `message for epoch ${framing.epoch}, at ${state.groupContext.epoch}`);
  }
  if (framing.epoch < state.groupContext.epoch && !olderAllowed) {
    throw new MlsSessionError("stale_epoch", `message for epoch ${framing.epoch}, at ${state.groupContext.epoch}`);
  }
}

/**
 * @param {any[]} tree ratchet tree (leaf i at node 2i)
 * @param {number | null} ownLeaf
 * @param {(credential: any, key: Uint8Array) => boolean} valid
 * @returns {Member[]}
 */
function treeMembers(tree, ownLeaf, valid) {
  /** @type {Member[]} */
  const members = [];
  for (let node = 0; node < tree.length; node += 2) {
    const entry = tree[node];
    if (entry?.nodeType !== "leaf") continue;
    const { credential, signaturePublicKey } = entry.leaf;
    const who = credential.credentialType === "basic" ? parseIdentity(credential.identity) : null;
    members.push({
      leaf: node / 2,
      id: who?.id ?? null,
      name: who?.name ?? null,
      signatureKey: signaturePublicKey.slice(),
      valid: valid(credential, signaturePublicKey),
      self: node / 2 === ownLeaf,
    });
  }
  return members;
}

/**
 * See MlsMember.securityCode().
 * @param {Uint8Array} authenticator at least 20 bytes
 * @returns {string}
 */
export function securityCodeFrom(authenticator) {
  if (authenticator.length < 20) throw new RangeError("epoch authenticator too short");
  const groups = [];
  for (let chunk = 0; chunk < 4; chunk++) {
    let value = 0;
    for (let i = 0; i < 5; i++) value = value * 256 + authenticator[chunk * 5 + i];
    groups.push(String(value % 100000).padStart(5, "0"));
  }
  return groups.join(" ");
}

/** @param {unknown} error */
function errorText(error) {
  return error instanceof Error ? error.message : String(error);
}
