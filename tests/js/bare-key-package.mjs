// Shared by tests/js/parenthash.test.mjs and unmerged.test.mjs: a key package made directly
// with ts-mls (not through mls.js), as another client might send, entered in the roster.
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
