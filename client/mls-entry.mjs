// The part of ts-mls that src/incamera/web/e2ee/mls.js uses, bundled by build.sh into
// src/incamera/web/vendor/ts-mls.js. Only cipher suite 1 (X25519, AES-128-GCM, SHA-256,
// Ed25519) is used; it runs on WebCrypto and @hpke/core, no optional peer is needed.
export {
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPub,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  mlsExporter,
  processPrivateMessage,
  processPublicMessage,
  zeroOutUint8Array,
} from "ts-mls";
export { defaultClientConfig } from "ts-mls/clientConfig.js";
export { decodeRatchetTree, encodeRatchetTree } from "ts-mls/ratchetTree.js";
// Application messages are opened with the lower-level call so that the sender's leaf (whose
// signature verified) is known; processPrivateMessage returns only the data.
export { unprotectPrivateMessage } from "ts-mls/messageProtection.js";
// For tests/js/parenthash.test.mjs: the (patched, see build.sh) RFC 9420 §7.9.2 parent-hash
// verification and the §7.8 tree hash, to check them on the RFC test vectors and tampered trees.
export { verifyParentHashes } from "ts-mls/parentHash.js";
export { treeHash } from "ts-mls/treeHash.js";
// SHA-256, HMAC and HKDF computed synchronously in JavaScript for the MLS key schedule and
// secret tree (src/incamera/web/e2ee/mls.js, fastHashing): WebCrypto's per-call asynchronous
// round trip costs far more than these small hashes (about 3,000 HMACs per epoch at 500
// members).
export { sha256 } from "@noble/hashes/sha2.js";
export { hmac } from "@noble/hashes/hmac.js";
export { extract as hkdfExtract, expand as hkdfExpand } from "@noble/hashes/hkdf.js";
