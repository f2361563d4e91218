// Personal invitations in an end-to-end encrypted meeting with a lobby (docs/e2ee.md, "Lobby").
//
// The server checks an invitation's token and lets its holder skip the lobby; for the MLS
// group that is only the server's word, so the committer would not add them. The moderator's
// browser therefore also puts a random invitation KEY into the link's fragment (`#ik=`, never
// sent to the server) and shares it with the group in an MLS application message. The invited
// browser proves that it holds the key with
//   proof = HMAC-SHA256(key, "incamera invitation v1" 0x00 group_id 0x00 participant_id)
// (base64url), which the server relays in `participant.invite_proof`. A moderator's browser
// that knows the key checks the proof and admits that participant to the group as it would
// from the lobby. The server, which never sees the key, cannot make a proof up, and a proof
// is bound to one participant id of one meeting.

import { fromBase64Url, toBase64Url } from "./mls.js";

const LABEL = "incamera invitation v1";
export const INVITATION_KEY_BYTES = 16;

function proofInput(groupId, participantId) {
  return new TextEncoder().encode(`${LABEL}\u0000${groupId}\u0000${participantId}`);
}

function importKey(keyBytes, usage) {
  return crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

/** A new invitation key, base64url (goes into the invitation link as `#...&ik=<key>`). */
export function newInvitationKey() {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(INVITATION_KEY_BYTES)));
}

/** Whether `text` looks like an invitation key (base64url of 16 bytes). */
export function isInvitationKey(text) {
  return typeof text === "string" && /^[A-Za-z0-9_-]{22}$/.test(text);
}

/** The invited participant's proof of holding `key` (both base64url). */
export async function invitationProof(key, groupId, participantId) {
  const hmac = await importKey(fromBase64Url(key), "sign");
  const mac = await crypto.subtle.sign("HMAC", hmac, proofInput(groupId, participantId));
  return toBase64Url(new Uint8Array(mac));
}

/** Whether `proof` (base64url) proves `key` for this participant (constant-time compare). */
export async function checkInvitationProof(key, groupId, participantId, proof) {
  let mac;
  try {
    mac = fromBase64Url(proof);
  } catch {
    return false;
  }
  if (mac.length !== 32) return false;
  const hmac = await importKey(fromBase64Url(key), "verify");
  return crypto.subtle.verify("HMAC", hmac, mac, proofInput(groupId, participantId));
}
