// SFrame, RFC 9605, with WebCrypto (browsers, and Node 20's globalThis.crypto).
//
// What is here, by RFC section:
//  - the header (§4.3): config byte X|K(3)|Y|C(3), then KID and CTR as minimal big-endian
//    integers when they do not fit in three bits. KID and CTR are BigInts (0..2^64-1).
//  - the five cipher suites (§4.5, Table 1), with the AES-CTR + HMAC compound AEAD (§4.5.1).
//  - key and salt derivation from base_key and KID (§4.4.2), encryption (§4.4.3) and
//    decryption (§4.4.4).
//  - the MLS key scheme (§5.2): one base_key per epoch (MLS-Exporter("SFrame 1.0 Base Key", "",
//    AEAD.Nk)); KID = context << 20 | leaf << 4 | (epoch mod 16), i.e. E = 4, S = 16.
//  - incamera's frame layout: clear_prefix || header || ciphertext || tag, the clear prefix
//    (VP8: 10 bytes of a key frame, 3 of a delta frame; Opus: 1; VP9, AV1: none) being the
//    SFrame metadata, so it is authenticated (AAD = header || prefix).
//
// Keys stay inside WebCrypto: a base key is imported as a non-extractable HKDF key, AES-GCM
// keys are derived from it without ever being bytes in JavaScript. (The CTR+HMAC suites need
// their 48 derived bytes split in two, so those pass through memory once; the salt is bytes.)

const subtle = globalThis.crypto.subtle;

export const MAX_UINT64 = (1n << 64n) - 1n;

/** Malformed SFrame header (the one error type for bad input to a parser). */
export class ParseError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ParseError';
  }
}

/** A ciphertext that does not authenticate, is too short, or names an unknown key. */
export class DecryptError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DecryptError';
  }
}

/** No receive key for the header's KID (RFC 9605 §4.4.4 allows keeping the frame for later). */
export class UnknownKidError extends DecryptError {
  constructor(kid) {
    super(`no receive key for KID ${kid}`);
    this.name = 'UnknownKidError';
    this.kid = kid;
  }
}

/** A codec whose frames incamera does not encrypt (H.264: its packetizer parses the frame). */
export class UnsupportedCodecError extends Error {
  constructor(codec) {
    super(`codec ${codec} is not supported with end-to-end encryption`);
    this.name = 'UnsupportedCodecError';
  }
}

// --- bytes ------------------------------------------------------------------------------

/** A Uint8Array view of an ArrayBuffer, a typed array or a DataView (no copy). */
export function bytesOf(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('expected bytes');
}

function concat(...parts) {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function bigOf(value, name) {
  const big = typeof value === 'bigint' ? value : BigInt(value);
  if (big < 0n || big > MAX_UINT64) throw new RangeError(`SFrame ${name} ${value} is not a 64-bit unsigned integer`);
  return big;
}

function writeBig(out, offset, value, length) {
  let v = value;
  for (let i = length - 1; i >= 0; i--) {
    out[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function readBig(data, offset, length) {
  let v = 0n;
  for (let i = 0; i < length; i++) v = (v << 8n) | BigInt(data[offset + i]);
  return v;
}

function minimalLength(value) {
  let length = 1;
  while (length < 8 && value >> BigInt(8 * length) !== 0n) length++;
  return length;
}

function be64(n) {
  const out = new Uint8Array(8);
  writeBig(out, 0, BigInt(n), 8);
  return out;
}

// --- header (RFC 9605 §4.3) ---------------------------------------------------------------

/** Encoded length of the header for (kid, ctr). */
export function headerLength(kid, ctr) {
  const k = bigOf(kid, 'KID');
  const c = bigOf(ctr, 'CTR');
  return 1 + (k > 7n ? minimalLength(k) : 0) + (c > 7n ? minimalLength(c) : 0);
}

/** The header bytes for (kid, ctr); numbers or BigInts. */
export function encodeHeader(kid, ctr) {
  const k = bigOf(kid, 'KID');
  const c = bigOf(ctr, 'CTR');
  const out = new Uint8Array(headerLength(k, c));
  let config = 0;
  let offset = 1;
  if (k > 7n) {
    const length = minimalLength(k);
    config |= 0x80 | ((length - 1) << 4);
    writeBig(out, offset, k, length);
    offset += length;
  } else {
    config |= Number(k) << 4;
  }
  if (c > 7n) {
    const length = minimalLength(c);
    config |= 0x08 | (length - 1);
    writeBig(out, offset, c, length);
  } else {
    config |= Number(c);
  }
  out[0] = config;
  return out;
}

function readField(data, offset, extended, bits, name) {
  if (!extended) return [BigInt(bits), offset];
  const length = bits + 1;
  if (data.length < offset + length) throw new ParseError(`SFrame header truncated in the ${name}`);
  const value = readBig(data, offset, length);
  if (value < 8n || minimalLength(value) !== length) throw new ParseError(`SFrame ${name} is not minimally encoded`);
  return [value, offset + length];
}

/**
 * The header at data[offset..]: {kid, ctr, length} (BigInts, and the header's byte length).
 * Throws ParseError for a truncated or non-minimal header.
 */
export function parseHeader(data, offset = 0) {
  const bytes = bytesOf(data);
  if (offset >= bytes.length) throw new ParseError('SFrame header is empty');
  const config = bytes[offset];
  const [kid, afterKid] = readField(bytes, offset + 1, (config & 0x80) !== 0, (config >> 4) & 0x07, 'KID');
  const [ctr, end] = readField(bytes, afterKid, (config & 0x08) !== 0, config & 0x07, 'CTR');
  return { kid, ctr, length: end - offset };
}

// --- cipher suites (RFC 9605 §4.5) ---------------------------------------------------------

export const SUITES = Object.freeze({
  1: Object.freeze({ name: 'AES_128_CTR_HMAC_SHA256_80', nh: 32, nka: 16, nk: 48, nn: 12, nt: 10, hash: 'SHA-256' }),
  2: Object.freeze({ name: 'AES_128_CTR_HMAC_SHA256_64', nh: 32, nka: 16, nk: 48, nn: 12, nt: 8, hash: 'SHA-256' }),
  3: Object.freeze({ name: 'AES_128_CTR_HMAC_SHA256_32', nh: 32, nka: 16, nk: 48, nn: 12, nt: 4, hash: 'SHA-256' }),
  4: Object.freeze({ name: 'AES_128_GCM_SHA256_128', nh: 32, nka: 0, nk: 16, nn: 12, nt: 16, hash: 'SHA-256' }),
  5: Object.freeze({ name: 'AES_256_GCM_SHA512_128', nh: 64, nka: 0, nk: 32, nn: 12, nt: 16, hash: 'SHA-512' }),
});

export const DEFAULT_SUITE = 4;

export function suiteParams(suite) {
  const params = SUITES[suite];
  if (!params) throw new RangeError(`unknown SFrame cipher suite ${suite}`);
  return params;
}

const isCtrHmac = (params) => params.nka > 0;

/**
 * The AEAD key of a suite from raw bytes (Nk of them), as non-extractable CryptoKeys:
 * an AES-GCM key, or {enc: AES-CTR, auth: HMAC} for the compound suites (§4.5.1).
 */
export async function importAeadKey(suite, keyBytes) {
  const params = suiteParams(suite);
  const raw = bytesOf(keyBytes);
  if (raw.length !== params.nk) throw new RangeError(`suite ${suite} needs a ${params.nk}-byte key`);
  if (!isCtrHmac(params)) return subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  const [enc, auth] = await Promise.all([
    subtle.importKey('raw', raw.subarray(0, params.nka), 'AES-CTR', false, ['encrypt', 'decrypt']),
    subtle.importKey('raw', raw.subarray(params.nka), { name: 'HMAC', hash: params.hash }, false, ['sign']),
  ]);
  return { enc, auth };
}

async function ctrHmacTag(params, auth, nonce, aad, ct) {
  const data = concat(be64(aad.length), be64(ct.length), be64(params.nt), nonce, aad, ct);
  const mac = new Uint8Array(await subtle.sign('HMAC', auth, data));
  return mac.subarray(0, params.nt);
}

function ctrParams(nonce) {
  // The initial counter block is the 12-byte nonce and four zero bytes (§4.5.1).
  const counter = new Uint8Array(16);
  counter.set(nonce);
  return { name: 'AES-CTR', counter, length: 64 };
}

function equalConstantTime(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** AEAD.Encrypt of the suite: ciphertext || tag. `key` from importAeadKey or a derived key. */
export async function aeadEncrypt(suite, key, nonce, aad, plaintext) {
  const params = suiteParams(suite);
  const pt = bytesOf(plaintext);
  const ad = bytesOf(aad);
  if (!isCtrHmac(params)) {
    return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: ad, tagLength: 128 }, key, pt));
  }
  const ct = new Uint8Array(await subtle.encrypt(ctrParams(nonce), key.enc, pt));
  return concat(ct, await ctrHmacTag(params, key.auth, nonce, ad, ct));
}

/** AEAD.Decrypt of the suite; throws DecryptError when the tag does not verify. */
export async function aeadDecrypt(suite, key, nonce, aad, ciphertext) {
  const params = suiteParams(suite);
  const data = bytesOf(ciphertext);
  const ad = bytesOf(aad);
  if (data.length < params.nt) throw new DecryptError('ciphertext is shorter than the authentication tag');
  if (!isCtrHmac(params)) {
    try {
      return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv: nonce, additionalData: ad, tagLength: 128 }, key, data));
    } catch {
      throw new DecryptError('authentication failed');
    }
  }
  const inner = data.subarray(0, data.length - params.nt);
  const tag = data.subarray(data.length - params.nt);
  if (!equalConstantTime(tag, await ctrHmacTag(params, key.auth, nonce, ad, inner))) {
    throw new DecryptError('authentication failed');
  }
  return new Uint8Array(await subtle.decrypt(ctrParams(nonce), key.enc, inner));
}

// --- key derivation (RFC 9605 §4.4.2) ------------------------------------------------------

const textEncoder = new TextEncoder();
const KEY_LABEL = textEncoder.encode('SFrame 1.0 Secret key ');
const SALT_LABEL = textEncoder.encode('SFrame 1.0 Secret salt ');
const EMPTY = new Uint8Array(0);

/** HKDF-Expand info labels: ASCII label || KID (8 bytes big-endian) || suite (2 bytes). */
export function sframeLabels(suite, kid) {
  const tail = new Uint8Array(10);
  writeBig(tail, 0, bigOf(kid, 'KID'), 8);
  tail[8] = (suite >> 8) & 0xff;
  tail[9] = suite & 0xff;
  return { keyLabel: concat(KEY_LABEL, tail), saltLabel: concat(SALT_LABEL, tail) };
}

/** A base key (bytes) as a non-extractable HKDF CryptoKey. */
export function importBaseKey(baseKey) {
  return subtle.importKey('raw', bytesOf(baseKey), 'HKDF', false, ['deriveBits', 'deriveKey']);
}

async function baseKeyOf(baseKey) {
  if (baseKey && typeof baseKey === 'object' && 'algorithm' in baseKey && 'usages' in baseKey) return baseKey;
  return importBaseKey(baseKey);
}

const hkdfParams = (params, info) => ({ name: 'HKDF', hash: params.hash, salt: EMPTY, info });

/** HKDF-Extract("", base_key): HMAC with an empty key, which equals a key of zero bytes. */
export async function sframeSecret(suite, baseKeyBytes) {
  const params = suiteParams(suite);
  const zero = await subtle.importKey('raw', new Uint8Array(params.nh), { name: 'HMAC', hash: params.hash }, false, ['sign']);
  return new Uint8Array(await subtle.sign('HMAC', zero, bytesOf(baseKeyBytes)));
}

/** {key, salt} as bytes (RFC 9605 §4.4.2). For tests and tools; media uses deriveSFrameKey. */
export async function deriveKeySaltBytes(suite, baseKey, kid) {
  const params = suiteParams(suite);
  const base = await baseKeyOf(baseKey);
  const { keyLabel, saltLabel } = sframeLabels(suite, kid);
  const [key, salt] = await Promise.all([
    subtle.deriveBits(hkdfParams(params, keyLabel), base, params.nk * 8),
    subtle.deriveBits(hkdfParams(params, saltLabel), base, params.nn * 8),
  ]);
  return { key: new Uint8Array(key), salt: new Uint8Array(salt) };
}

/** The key for one KID: suite, kid (BigInt), salt (bytes) and the AEAD key (CryptoKeys). */
export class SFrameKey {
  constructor(suite, kid, salt, aeadKey) {
    this.suite = suite;
    this.kid = kid;
    this.salt = salt;
    this.aeadKey = aeadKey;
  }
}

/** Derive the SFrameKey for `kid` from a base key (bytes or an HKDF CryptoKey). */
export async function deriveSFrameKey(suite, baseKey, kid) {
  const params = suiteParams(suite);
  const k = bigOf(kid, 'KID');
  const base = await baseKeyOf(baseKey);
  const { keyLabel, saltLabel } = sframeLabels(suite, k);
  const salt = new Uint8Array(await subtle.deriveBits(hkdfParams(params, saltLabel), base, params.nn * 8));
  let aeadKey;
  if (!isCtrHmac(params)) {
    aeadKey = await subtle.deriveKey(hkdfParams(params, keyLabel), base, { name: 'AES-GCM', length: params.nk * 8 }, false, ['encrypt', 'decrypt']);
  } else {
    const bits = new Uint8Array(await subtle.deriveBits(hkdfParams(params, keyLabel), base, params.nk * 8));
    aeadKey = await importAeadKey(suite, bits);
    bits.fill(0);
  }
  return new SFrameKey(suite, k, salt, aeadKey);
}

/** salt XOR CTR, the counter taken as a big-endian integer of the salt's length (§4.4.3). */
export function frameNonce(salt, ctr) {
  const out = Uint8Array.from(salt);
  let c = bigOf(ctr, 'CTR');
  for (let i = out.length - 1; i >= 0 && c !== 0n; i--) {
    out[i] ^= Number(c & 0xffn);
    c >>= 8n;
  }
  return out;
}

// --- encrypt and decrypt (RFC 9605 §4.4.3, §4.4.4) -----------------------------------------

/** header || ciphertext || tag for plaintext under `key` (an SFrameKey) with counter `ctr`. */
export async function encryptWith(key, ctr, metadata, plaintext) {
  const header = encodeHeader(key.kid, ctr);
  const aad = concat(header, bytesOf(metadata));
  const sealed = await aeadEncrypt(key.suite, key.aeadKey, frameNonce(key.salt, ctr), aad, plaintext);
  return concat(header, sealed);
}

/**
 * The plaintext of an SFrame ciphertext. `lookup(kid)` returns the SFrameKey for a KID (or a
 * promise of it), or null. Throws ParseError, UnknownKidError or DecryptError.
 */
export async function decryptWith(lookup, metadata, ciphertext) {
  const data = bytesOf(ciphertext);
  const header = parseHeader(data);
  const key = await lookup(header.kid);
  if (!key) throw new UnknownKidError(header.kid);
  const aad = concat(data.subarray(0, header.length), bytesOf(metadata));
  return aeadDecrypt(key.suite, key.aeadKey, frameNonce(key.salt, header.ctr), aad, data.subarray(header.length));
}

/**
 * Keys by KID with counters, like RFC 9605 §4.4.1: each KID is a send key or a receive key,
 * never both. Counters only move forward and outlive removeKey, so no nonce is used twice.
 */
export class SFrameContext {
  constructor(suite = DEFAULT_SUITE) {
    suiteParams(suite);
    this.suite = suite;
    this.keys = new Map(); // kid (BigInt) -> {key: SFrameKey, send: boolean}
    this.counters = new Map(); // kid (BigInt) -> next CTR (BigInt)
  }

  get tagLength() {
    return suiteParams(this.suite).nt;
  }

  async #add(kid, baseKey, send) {
    const k = bigOf(kid, 'KID');
    const current = this.keys.get(k);
    if (current && current.send !== send) throw new Error(`KID ${k} is already a ${current.send ? 'send' : 'receive'} key`);
    this.keys.set(k, { key: await deriveSFrameKey(this.suite, baseKey, k), send });
  }

  addSendKey(kid, baseKey) {
    return this.#add(kid, baseKey, true);
  }

  addReceiveKey(kid, baseKey) {
    return this.#add(kid, baseKey, false);
  }

  removeKey(kid) {
    this.keys.delete(bigOf(kid, 'KID'));
  }

  hasKey(kid) {
    return this.keys.has(bigOf(kid, 'KID'));
  }

  nextCounter(kid) {
    return this.counters.get(bigOf(kid, 'KID')) ?? 0n;
  }

  /** The receive SFrameKey for a KID, or null. */
  receiveKey(kid) {
    const entry = this.keys.get(bigOf(kid, 'KID'));
    return entry && !entry.send ? entry.key : null;
  }

  /** Take a counter for `kid`: the next one, or `ctr` if it is not below it. */
  takeCounter(kid, ctr = null) {
    const k = bigOf(kid, 'KID');
    const next = this.nextCounter(k);
    const use = ctr === null || ctr === undefined ? next : bigOf(ctr, 'CTR');
    if (use < next) throw new RangeError(`CTR ${use} of KID ${k} was already used (next is ${next})`);
    this.counters.set(k, use + 1n);
    return use;
  }

  async encrypt(kid, ctr, metadata, plaintext) {
    const entry = this.keys.get(bigOf(kid, 'KID'));
    if (!entry || !entry.send) throw new Error(`no send key for KID ${kid}`);
    return encryptWith(entry.key, this.takeCounter(kid, ctr), metadata, plaintext);
  }

  decrypt(metadata, ciphertext) {
    return decryptWith((kid) => this.receiveKey(kid), metadata, ciphertext);
  }
}

// --- MLS key scheme (RFC 9605 §5.2, E = 4, S = 16) -----------------------------------------

export const MLS_EXPORTER_LABEL = 'SFrame 1.0 Base Key';
export const MLS_EPOCH_BITS = 4;
export const MLS_INDEX_BITS = 16;

/** KID contexts: which of a sender's streams. */
export const STREAM_CONTEXT = Object.freeze({ microphone: 0, camera: 1, screenVideo: 2, screenAudio: 3 });

/** Bytes to export from MLS per epoch: AEAD.Nk of the suite. */
export function mlsBaseKeyLength(suite = DEFAULT_SUITE) {
  return suiteParams(suite).nk;
}

/** KID = context << 20 | leaf << 4 | (epoch mod 16), as a BigInt. */
export function mlsKid(context, leaf, epoch) {
  const c = BigInt(context);
  const l = BigInt(leaf);
  const e = BigInt(epoch);
  if (c < 0n || c >= 1n << BigInt(64 - MLS_EPOCH_BITS - MLS_INDEX_BITS)) throw new RangeError(`KID context ${context} out of range`);
  if (l < 0n || l >= 1n << BigInt(MLS_INDEX_BITS)) throw new RangeError(`leaf index ${leaf} does not fit in ${MLS_INDEX_BITS} bits`);
  if (e < 0n) throw new RangeError('negative epoch');
  return (c << BigInt(MLS_INDEX_BITS + MLS_EPOCH_BITS)) | (l << BigInt(MLS_EPOCH_BITS)) | (e & 0xfn);
}

/** {context, leaf, epochBits} of a KID (numbers; context as a BigInt if it is not safe). */
export function splitMlsKid(kid) {
  const k = bigOf(kid, 'KID');
  const context = k >> BigInt(MLS_INDEX_BITS + MLS_EPOCH_BITS);
  return {
    context: context <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(context) : context,
    leaf: Number((k >> BigInt(MLS_EPOCH_BITS)) & 0xffffn),
    epochBits: Number(k & 0xfn),
  };
}

// --- incamera media-frame layout -------------------------------------------------------------

// Leading bytes left in clear: [key frame, delta frame].
const CLEAR_PREFIX = Object.freeze({
  vp8: [10, 3], // RFC 6386 §9.1: the 3-byte frame tag, and 7 more (start code, size) on key frames
  opus: [1, 1], // RFC 6716 §3.1: the TOC byte
  vp9: [0, 0],
  av1: [0, 0],
});

/** 'video/VP8' or 'VP8' -> 'vp8'; throws UnsupportedCodecError for others (H.264...). */
export function codecKey(codec) {
  const name = String(codec).split('/').pop().toLowerCase();
  if (!Object.hasOwn(CLEAR_PREFIX, name)) throw new UnsupportedCodecError(codec);
  return name;
}

/** The VP8 frame tag's first bit is 0 on a key frame (RFC 6386 §9.1). */
export function vp8IsKeyFrame(frame) {
  const bytes = bytesOf(frame);
  return bytes.length > 0 && (bytes[0] & 0x01) === 0;
}

/** Leading bytes of `frame` kept in clear; isKeyFrame null reads VP8's frame tag. */
export function clearPrefixLength(codec, isKeyFrame, frame) {
  const key = codecKey(codec);
  const bytes = bytesOf(frame);
  const keyFrame = isKeyFrame ?? (key !== 'vp8' || vp8IsKeyFrame(bytes));
  const [keyLength, deltaLength] = CLEAR_PREFIX[key];
  return Math.min(keyFrame ? keyLength : deltaLength, bytes.length);
}

/** prefix || header || ciphertext || tag of a frame, under an SFrameKey and counter. */
export async function sealFrame(key, ctr, codec, frame) {
  const bytes = bytesOf(frame);
  const prefix = bytes.subarray(0, clearPrefixLength(codec, null, bytes));
  return concat(prefix, await encryptWith(key, ctr, prefix, bytes.subarray(prefix.length)));
}

async function openAt(lookup, data, split) {
  const prefix = data.subarray(0, split);
  return concat(prefix, await decryptWith(lookup, prefix, data.subarray(split)));
}

function emptyFrameAt(data, split, tagLength) {
  try {
    return split + parseHeader(data, split).length + tagLength === data.length;
  } catch {
    return false;
  }
}

/**
 * The frame sealFrame made, prefix || plaintext. `lookup(kid)` gives SFrameKeys (or null).
 * A frame shorter than its codec prefix travels as frame || header || tag: when the usual
 * split fails, the shorter splits whose lengths add up are tried too.
 */
export async function openFrame(lookup, codec, data, tagLength = suiteParams(DEFAULT_SUITE).nt) {
  const bytes = bytesOf(data);
  const split = clearPrefixLength(codec, null, bytes);
  let firstError;
  try {
    return await openAt(lookup, bytes, split);
  } catch (error) {
    if (!(error instanceof ParseError || error instanceof DecryptError)) throw error;
    firstError = error;
  }
  const longest = Math.max(...CLEAR_PREFIX[codecKey(codec)]);
  for (let s = Math.min(longest, bytes.length) - 1; s >= 0; s--) {
    if (s === split || !emptyFrameAt(bytes, s, tagLength)) continue;
    try {
      return await openAt(lookup, bytes, s);
    } catch (error) {
      if (!(error instanceof ParseError || error instanceof DecryptError)) throw error;
    }
  }
  throw firstError;
}

/** sealFrame with a context's send key for `kid` and its next counter (or `ctr`). */
export async function protectFrame(context, kid, codec, frame, ctr = null) {
  const entry = context.keys.get(bigOf(kid, 'KID'));
  if (!entry || !entry.send) throw new Error(`no send key for KID ${kid}`);
  return sealFrame(entry.key, context.takeCounter(kid, ctr), codec, frame);
}

/** openFrame with a context's receive keys. */
export function unprotectFrame(context, codec, data) {
  return openFrame((kid) => context.receiveKey(kid), codec, data, context.tagLength);
}

/** Bytes SFrame adds to one frame: header length + tag length. */
export function overhead(kid, ctr, suite = DEFAULT_SUITE) {
  return headerLength(kid, ctr) + suiteParams(suite).nt;
}
