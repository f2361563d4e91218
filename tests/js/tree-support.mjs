// Shared by tests/js/parenthash.test.mjs and unmerged.test.mjs: decoding ratchet trees, and a
// key package made directly with ts-mls (not through mls.js), as another client might send.
import assert from "node:assert/strict";

import { encodeIdentity, toBase64Url } from "../../src/incamera/web/e2ee/mls.js";
import * as M from "../../src/incamera/web/vendor/ts-mls.js";

/** Returns `{raw, rawBytes}`: ts-mls's key package pair and its MLSMessage bytes. */
export async function bareKeyPackage(cs, roster, id = "raw", name = "Raw") {
  const credential = { credentialType: "basic", identity: encodeIdentity({ id, name }) };
  const raw = await M.generateKeyPackage(credential, M.defaultCapabilities(), M.defaultLifetime, [], cs);
  roster.set(id, { name, deviceKey: toBase64Url(raw.publicPackage.leafNode.signaturePublicKey) });
  const rawBytes = M.encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: raw.publicPackage });
  return { raw, rawBytes };
}

export const hex = (bytes) => Buffer.from(bytes).toString("hex");
export const isParent = (node) => node?.nodeType === "parent";

/** A whole encoded ratchet tree, decoded (no trailing bytes). */
export function decodeTree(bytes) {
  const decoded = M.decodeRatchetTree(bytes, 0);
  assert.ok(decoded !== undefined && decoded[1] === bytes.length, "ratchet tree decodes whole");
  return decoded[0];
}
