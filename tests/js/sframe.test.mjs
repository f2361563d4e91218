// SFrame in the browser module (src/incamera/web/e2ee/sframe.js) against every RFC 9605 test
// vector (tests/vectors/sframe-rfc9605-test-vectors.json), plus round trips, tampering and
// the frame layout. Run: node --test tests/js/sframe.test.mjs
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  DecryptError,
  ParseError,
  SFrameContext,
  STREAM_CONTEXT,
  SUITES,
  UnknownKidError,
  aeadDecrypt,
  aeadEncrypt,
  clearPrefixLength,
  deriveKeySaltBytes,
  encodeHeader,
  frameNonce,
  headerLength,
  importAeadKey,
  mlsBaseKeyLength,
  mlsKid,
  overhead,
  parseHeader,
  protectFrame,
  sframeLabels,
  sframeSecret,
  splitMlsKid,
  unprotectFrame,
} from '../../src/incamera/web/e2ee/sframe.js';

// KIDs and CTRs go up to 2^64-1: read them as strings, not as (lossy) JSON numbers.
const text = readFileSync(new URL('../vectors/sframe-rfc9605-test-vectors.json', import.meta.url), 'utf8');
const VECTORS = JSON.parse(text.replace(/"(kid|ctr)":\s*(\d+)/g, '"$1": "$2"'));

const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const seq = (n, start = 0) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

async function pair(suite, kid, baseKey) {
  const sender = new SFrameContext(suite);
  const receiver = new SFrameContext(suite);
  await sender.addSendKey(kid, baseKey);
  await receiver.addReceiveKey(kid, baseKey);
  return { sender, receiver };
}

test('the vector file has all sections', () => {
  assert.ok(VECTORS.header.length > 200);
  assert.deepEqual(new Set(VECTORS.aes_ctr_hmac.map((v) => v.cipher_suite)), new Set([1, 2, 3]));
  assert.deepEqual(new Set(VECTORS.sframe.map((v) => v.cipher_suite)), new Set([1, 2, 3, 4, 5]));
});

test('header vectors (RFC 9605 §4.3)', () => {
  for (const v of VECTORS.header) {
    const kid = BigInt(v.kid);
    const ctr = BigInt(v.ctr);
    assert.equal(toHex(encodeHeader(kid, ctr)), v.encoded, `encode ${v.kid} ${v.ctr}`);
    assert.equal(headerLength(kid, ctr), v.encoded.length / 2);
    const parsed = parseHeader(hex(v.encoded + 'ff00'));
    assert.deepEqual(parsed, { kid, ctr, length: v.encoded.length / 2 }, `parse ${v.encoded}`);
  }
});

test('AES-CTR + HMAC vectors (RFC 9605 §4.5.1)', async () => {
  for (const v of VECTORS.aes_ctr_hmac) {
    const params = SUITES[v.cipher_suite];
    const key = hex(v.key);
    assert.equal(toHex(key.subarray(0, params.nka)), v.enc_key);
    assert.equal(toHex(key.subarray(params.nka)), v.auth_key);
    const aead = await importAeadKey(v.cipher_suite, key);
    const ct = await aeadEncrypt(v.cipher_suite, aead, hex(v.nonce), hex(v.aad), hex(v.pt));
    assert.equal(toHex(ct), v.ct, `suite ${v.cipher_suite}`);
    assert.equal(toHex(await aeadDecrypt(v.cipher_suite, aead, hex(v.nonce), hex(v.aad), ct)), v.pt);
    await assert.rejects(aeadDecrypt(v.cipher_suite, aead, hex(v.nonce), hex(v.aad + '00'), ct), DecryptError);
  }
});

test('SFrame vectors for all five suites (RFC 9605 §4.4)', async () => {
  for (const v of VECTORS.sframe) {
    const suite = v.cipher_suite;
    const kid = BigInt(v.kid);
    const ctr = BigInt(v.ctr);
    const { keyLabel, saltLabel } = sframeLabels(suite, kid);
    assert.equal(toHex(keyLabel), v.sframe_key_label);
    assert.equal(toHex(saltLabel), v.sframe_salt_label);
    assert.equal(toHex(await sframeSecret(suite, hex(v.base_key))), v.sframe_secret);
    const { key, salt } = await deriveKeySaltBytes(suite, hex(v.base_key), kid);
    assert.equal(toHex(key), v.sframe_key, `key, suite ${suite}`);
    assert.equal(toHex(salt), v.sframe_salt);
    assert.equal(toHex(frameNonce(salt, ctr)), v.nonce);
    assert.equal(toHex(encodeHeader(kid, ctr)) + v.metadata, v.aad);

    // Through the context, with non-extractable keys derived inside WebCrypto:
    const { sender, receiver } = await pair(suite, kid, hex(v.base_key));
    const ct = await sender.encrypt(kid, ctr, hex(v.metadata), hex(v.pt));
    assert.equal(toHex(ct), v.ct, `ciphertext, suite ${suite}`);
    assert.equal(sender.nextCounter(kid), ctr + 1n);
    assert.equal(toHex(await receiver.decrypt(hex(v.metadata), hex(v.ct))), v.pt);
    await assert.rejects(receiver.decrypt(hex(v.metadata).subarray(1), hex(v.ct)), DecryptError);
  }
});

test('derived AES-GCM keys are not extractable', async () => {
  const { sender } = await pair(4, 3n, seq(16));
  const { key } = sender.keys.get(3n);
  assert.equal(key.aeadKey.extractable, false);
  assert.equal(key.aeadKey.algorithm.name, 'AES-GCM');
});

test('malformed headers throw ParseError', () => {
  const bad = ['', '80', '08', 'f000000000000000', '8005', '900009', '0900ff'];
  for (const h of bad) assert.throws(() => parseHeader(hex(h)), ParseError, h);
  // Arbitrary bytes: parse or ParseError, and a parsed header re-encodes to the same bytes.
  let state = 7;
  for (let i = 0; i < 3000; i++) {
    const bytes = Uint8Array.from({ length: 1 + (i % 18) }, () => (state = (state * 1103515245 + 12345) & 0x7fffffff) & 0xff);
    try {
      const { kid, ctr, length } = parseHeader(bytes);
      assert.equal(toHex(encodeHeader(kid, ctr)), toHex(bytes.subarray(0, length)));
    } catch (error) {
      assert.ok(error instanceof ParseError, String(error));
    }
  }
  assert.throws(() => encodeHeader(-1, 0), RangeError);
  assert.throws(() => encodeHeader(0, 1n << 64n), RangeError);
});

test('round trips for every suite, any changed byte is rejected', async () => {
  for (const suite of [1, 2, 3, 4, 5]) {
    for (const [kid, ctr] of [[0n, 0n], [7n, 8n], [0x123456n, 70000n], [(1n << 64n) - 1n, (1n << 64n) - 2n]]) {
      const { sender, receiver } = await pair(suite, kid, seq(32, suite));
      const metadata = seq(5, 200);
      const plaintext = seq(40, 9);
      const ct = await sender.encrypt(kid, ctr, metadata, plaintext);
      assert.equal(ct.length, plaintext.length + overhead(kid, ctr, suite));
      assert.deepEqual(await receiver.decrypt(metadata, ct), plaintext);
      for (let i = 0; i < ct.length; i++) {
        const changed = Uint8Array.from(ct);
        changed[i] ^= 0x01;
        await assert.rejects(receiver.decrypt(metadata, changed), (e) => e instanceof ParseError || e instanceof DecryptError);
      }
      const changedMetadata = Uint8Array.from(metadata);
      changedMetadata[4] ^= 0x80;
      await assert.rejects(receiver.decrypt(changedMetadata, ct), DecryptError);
      for (let end = 0; end < ct.length; end++) {
        await assert.rejects(receiver.decrypt(metadata, ct.subarray(0, end)), (e) => e instanceof ParseError || e instanceof DecryptError);
      }
    }
  }
});

test('counters only move forward; send keys do not decrypt', async () => {
  const context = new SFrameContext();
  await context.addSendKey(17, seq(16));
  assert.equal(parseHeader(await context.encrypt(17, null, new Uint8Array(), seq(3))).ctr, 0n);
  assert.equal(parseHeader(await context.encrypt(17, null, new Uint8Array(), seq(3))).ctr, 1n);
  await context.encrypt(17, 10n, new Uint8Array(), seq(3));
  await assert.rejects(context.encrypt(17, 10n, new Uint8Array(), seq(3)), RangeError);
  context.removeKey(17);
  await context.addSendKey(17, seq(16));
  const ct = await context.encrypt(17, null, new Uint8Array(), seq(3));
  assert.equal(parseHeader(ct).ctr, 11n);
  await assert.rejects(context.decrypt(new Uint8Array(), ct), UnknownKidError);
  await assert.rejects(context.addReceiveKey(17, seq(16)), /already a send key/);
});

test('MLS KID scheme (RFC 9605 §5.2, E=4, S=16)', () => {
  assert.equal(mlsKid(0, 0, 0), 0n);
  assert.equal(mlsKid(STREAM_CONTEXT.camera, 2, 5), (1n << 20n) | (2n << 4n) | 5n);
  assert.equal(mlsKid(STREAM_CONTEXT.screenAudio, 0xffff, 17), (3n << 20n) | (0xffffn << 4n) | 1n);
  assert.deepEqual(splitMlsKid(mlsKid(2, 300, 31)), { context: 2, leaf: 300, epochBits: 15 });
  assert.equal(mlsBaseKeyLength(), 16);
  assert.throws(() => mlsKid(0, 1 << 16, 0), RangeError);
  assert.throws(() => mlsKid(-1, 0, 0), RangeError);
  assert.throws(() => mlsKid(1n << 44n, 0, 0), RangeError);
});

const VP8_KEY = Uint8Array.from([0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, ...seq(30)]);
const VP8_DELTA = Uint8Array.from([0x31, 0x05, 0x00, ...seq(20)]);
const OPUS = Uint8Array.from([0x78, ...seq(12)]);

test('frame layout: clear prefix by codec, authenticated', async () => {
  const kid = mlsKid(STREAM_CONTEXT.camera, 1, 1);
  const { sender, receiver } = await pair(4, kid, seq(16));
  const cases = [
    ['video/VP8', VP8_KEY, 10],
    ['VP8', VP8_DELTA, 3],
    ['audio/opus', OPUS, 1],
    ['video/VP9', VP8_KEY, 0],
    ['video/AV1', VP8_KEY, 0],
    ['vp8', VP8_KEY.subarray(0, 4), 4],
    ['vp8', VP8_DELTA.subarray(0, 2), 2],
    ['opus', new Uint8Array(), 0],
  ];
  for (const [codec, frame, prefix] of cases) {
    assert.equal(clearPrefixLength(codec, null, frame), prefix, codec);
    const protectedFrame = await protectFrame(sender, kid, codec, frame);
    assert.deepEqual(protectedFrame.subarray(0, prefix), frame.subarray(0, prefix));
    assert.equal(parseHeader(protectedFrame, prefix).kid, kid);
    assert.deepEqual(await unprotectFrame(receiver, codec, protectedFrame), frame, `${codec} ${frame.length}`);
    if (prefix > 1) {
      const changed = Uint8Array.from(protectedFrame);
      changed[1] ^= 0x40;
      await assert.rejects(unprotectFrame(receiver, codec, changed), (e) => e instanceof ParseError || e instanceof DecryptError);
    }
  }
  assert.equal(clearPrefixLength('vp8', true, VP8_DELTA), 10);
  assert.throws(() => clearPrefixLength('video/H264', null, VP8_KEY), /not supported/);
});

test('frames of every length round-trip', async () => {
  const kid = mlsKid(STREAM_CONTEXT.screenVideo, 12, 3);
  for (const suite of [3, 4]) {
    const { sender, receiver } = await pair(suite, kid, seq(16));
    for (const codec of ['vp8', 'opus', 'vp9']) {
      for (let length = 0; length <= 14; length++) {
        for (const first of [0x00, 0x01]) {
          const frame = seq(length, first);
          const out = await protectFrame(sender, kid, codec, frame);
          assert.deepEqual(await unprotectFrame(receiver, codec, out), frame, `${suite} ${codec} ${length} ${first}`);
        }
      }
    }
  }
});
