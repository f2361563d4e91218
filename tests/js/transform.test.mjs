// The E2EE transform worker's logic (src/incamera/web/e2ee/frame-crypto.js) with fake encoded
// frames: plain objects with data (ArrayBuffer), type and getMetadata(), as the browser gives.
// Run: node --test tests/js/transform.test.mjs
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  EPOCH_RETAIN_MS,
  FrameTransform,
  KEY_FRAME_RETRY_FOR_MS,
  KEY_FRAME_RETRY_MS,
  KeyRing,
  TransformHub,
} from '../../src/incamera/web/e2ee/frame-crypto.js';
import { STREAM_CONTEXT, importBaseKey, mlsKid, parseHeader } from '../../src/incamera/web/e2ee/sframe.js';

const seq = (n, start = 0) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
const SECRET = [seq(32, 1), seq(32, 50), seq(32, 99)];

const VP8_KEY = Uint8Array.from([0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, ...seq(60)]);
const VP8_DELTA = Uint8Array.from([0x31, 0x05, 0x00, ...seq(40)]);
const OPUS = Uint8Array.from([0x78, ...seq(30)]);

function frame(bytes, metadata = {}) {
  // An explicit `mimeType: undefined` stands for a browser without metadata.mimeType.
  const { type = 'delta', ...rest } = metadata;
  const fields = { mimeType: 'video/VP8', payloadType: 96, synchronizationSource: 1234, ...rest };
  return { data: Uint8Array.from(bytes).buffer, type, getMetadata: () => ({ ...fields }) };
}

/** A manual clock: tests move time, never wait for it. */
function clock() {
  let now = 1000;
  return { now: () => now, advance: (ms) => (now += ms) };
}

async function participants({ context = STREAM_CONTEXT.camera, kind = 'video', epochs = [0] } = {}) {
  const time = clock();
  const aliceRing = new KeyRing({ now: time.now });
  const bobRing = new KeyRing({ now: time.now });
  for (const epoch of epochs) {
    await aliceRing.installEpoch(epoch, SECRET[epoch % 3], 1);
    await bobRing.installEpoch(epoch, SECRET[epoch % 3], 2);
  }
  const keyframes = [];
  const sender = new FrameTransform(aliceRing, { role: 'send', kind, context, mid: '0' });
  const receiver = new FrameTransform(bobRing, { role: 'recv', kind, context, mid: '7' }, { onKeyFrameNeeded: (mid) => keyframes.push(mid) });
  return { time, aliceRing, bobRing, sender, receiver, keyframes };
}

/** Send `bytes` through `sender`; return the frame on the wire (or null if dropped). */
async function send(sender, bytes, metadata) {
  const f = frame(bytes, metadata);
  return (await sender.process(f)) ? f : null;
}

async function receive(receiver, wireFrame, metadata) {
  const f = frame(new Uint8Array(wireFrame.data), metadata);
  return (await receiver.process(f)) ? new Uint8Array(f.data) : null;
}

test('no key: the sender drops the frame, the receiver too', async () => {
  const ring = new KeyRing();
  const sender = new FrameTransform(ring, { role: 'send', kind: 'video', context: 1, mid: '0' });
  const receiver = new FrameTransform(ring, { role: 'recv', kind: 'video', context: 1, mid: '1' });
  const f = frame(VP8_KEY, { type: 'key' });
  assert.equal(await sender.process(f), false);
  assert.deepEqual(new Uint8Array(f.data), VP8_KEY); // untouched, and not passed on
  assert.equal(sender.stats.dropped_no_key, 1);
  assert.equal(sender.stats.encrypted, 0);
  assert.equal(await receiver.process(frame(VP8_KEY)), false);
  assert.equal(receiver.stats.failed_auth + receiver.stats.dropped_no_key, 1);
});

test('VP8 key and delta frames and Opus round-trip with their clear prefixes', async () => {
  const cases = [
    [VP8_KEY, { mimeType: 'video/VP8', type: 'key' }, 10, STREAM_CONTEXT.camera, 'video'],
    [VP8_DELTA, { mimeType: 'video/VP8', type: 'delta' }, 3, STREAM_CONTEXT.camera, 'video'],
    [OPUS, { mimeType: 'audio/opus' }, 1, STREAM_CONTEXT.microphone, 'audio'],
    [VP8_KEY, { mimeType: 'video/VP9', type: 'key' }, 0, STREAM_CONTEXT.screenVideo, 'video'],
  ];
  for (const [bytes, metadata, prefix, context, kind] of cases) {
    const { sender, receiver } = await participants({ context, kind });
    const wire = await send(sender, bytes, metadata);
    const wireBytes = new Uint8Array(wire.data);
    assert.deepEqual(wireBytes.subarray(0, prefix), bytes.subarray(0, prefix), metadata.mimeType);
    assert.notDeepEqual(wireBytes.subarray(prefix, bytes.length), bytes.subarray(prefix));
    const header = parseHeader(wireBytes, prefix);
    assert.equal(header.kid, mlsKid(context, 1, 0));
    assert.equal(header.ctr, 0n);
    assert.equal(wireBytes.length, bytes.length + header.length + 16);
    assert.deepEqual(await receive(receiver, wire, metadata), bytes);
    assert.equal(sender.stats.encrypted, 1);
    assert.equal(receiver.stats.decrypted, 1);
  }
});

test('without mimeType the codec comes from payloadTypes or the kind', async () => {
  const { aliceRing } = await participants();
  const audio = new FrameTransform(aliceRing, { role: 'send', kind: 'audio', context: 0 });
  const wire = await send(audio, OPUS, { mimeType: undefined, payloadType: 111 });
  assert.deepEqual(new Uint8Array(wire.data).subarray(0, 1), OPUS.subarray(0, 1));
  assert.equal(parseHeader(new Uint8Array(wire.data), 1).kid, mlsKid(0, 1, 0));
  const video = new FrameTransform(aliceRing, { role: 'send', kind: 'video', context: 1, payloadTypes: { 98: 'video/VP9' } });
  const vp9 = await send(video, VP8_KEY, { mimeType: undefined, payloadType: 98 });
  assert.equal(parseHeader(new Uint8Array(vp9.data), 0).kid, mlsKid(1, 1, 0)); // no clear prefix
});

test('a receiver passes empty frames as they are', async () => {
  const { receiver } = await participants({ kind: 'audio', context: 0 });
  const f = frame(new Uint8Array(), { mimeType: 'audio/opus' });
  assert.equal(await receiver.process(f), true);
  assert.equal(f.data.byteLength, 0);
  assert.equal(receiver.stats.failed_auth + receiver.stats.decrypted, 0);
});

test('H.264 frames are dropped, never sent in clear', async () => {
  const { sender } = await participants();
  assert.equal(await send(sender, VP8_KEY, { mimeType: 'video/H264' }), null);
  assert.equal(sender.stats.dropped_codec, 1);
});

test('counters count per KID and survive a reset', async () => {
  const { aliceRing, sender } = await participants();
  const ctrOf = (wire) => parseHeader(new Uint8Array(wire.data), 3).ctr;
  assert.equal(ctrOf(await send(sender, VP8_DELTA)), 0n);
  assert.equal(ctrOf(await send(sender, VP8_DELTA)), 1n);
  const audio = new FrameTransform(aliceRing, { role: 'send', kind: 'audio', context: 0 });
  const opus = await send(audio, OPUS, { mimeType: 'audio/opus' });
  assert.equal(parseHeader(new Uint8Array(opus.data), 1).ctr, 0n); // another KID, its own counter
  aliceRing.reset();
  assert.equal(await send(sender, VP8_DELTA), null);
  await aliceRing.installEpoch(0, SECRET[0], 1); // the same key again: counters go on
  assert.equal(ctrOf(await send(sender, VP8_DELTA)), 2n);
});

test('epoch switch: the new key at once, the old one accepted for a while', async () => {
  const { time, aliceRing, bobRing, sender, receiver } = await participants();
  const oldFrame = await send(sender, VP8_DELTA);
  await aliceRing.installEpoch(1, SECRET[1], 1);
  await bobRing.installEpoch(1, SECRET[1], 2);
  const newFrame = await send(sender, VP8_DELTA);
  assert.equal(parseHeader(new Uint8Array(newFrame.data), 3).kid, mlsKid(1, 1, 1));
  assert.deepEqual(await receive(receiver, newFrame), VP8_DELTA);
  time.advance(EPOCH_RETAIN_MS - 1);
  assert.deepEqual(await receive(receiver, oldFrame), VP8_DELTA); // late frame of epoch 0
  assert.deepEqual(bobRing.heldEpochs(), [0, 1]);
  time.advance(1);
  assert.equal(await receive(receiver, oldFrame), null); // epoch 0 forgotten
  assert.deepEqual(bobRing.heldEpochs(), [1]);
  assert.equal(receiver.stats.dropped_no_key, 1);
  assert.equal(receiver.stats.decrypted, 2);
});

test('an epoch with the same low four bits replaces the old one at once', async () => {
  const { bobRing, sender, receiver } = await participants();
  const oldFrame = await send(sender, VP8_DELTA);
  await bobRing.installEpoch(16, SECRET[1], 2);
  assert.deepEqual(bobRing.heldEpochs(), [16]);
  assert.equal(await receive(receiver, oldFrame), null); // epoch 16's key: no match
  assert.equal(receiver.stats.failed_auth, 1);
});

test('a changed clear prefix or ciphertext is rejected', async () => {
  const { sender, receiver } = await participants();
  for (const [bytes, type] of [[VP8_KEY, 'key'], [VP8_DELTA, 'delta']]) {
    for (const position of [1, 2, bytes.length]) {
      const wire = await send(sender, bytes, { type });
      const changed = new Uint8Array(wire.data);
      changed[position] ^= 0x04;
      assert.equal(await receive(receiver, { data: changed.buffer }), null, `${type} byte ${position}`);
    }
  }
  assert.equal(receiver.stats.failed_auth, 6);
  assert.equal(receiver.stats.decrypted, 0);
});

test('a receiver that lacked a key asks for a key frame when it arrives', async () => {
  const { aliceRing, bobRing, sender, receiver, keyframes } = await participants();
  await aliceRing.installEpoch(1, SECRET[1], 1); // Bob has not processed the commit yet
  const early = await send(sender, VP8_DELTA);
  assert.equal(await receive(receiver, early), null);
  assert.equal(await receive(receiver, early), null);
  assert.equal(receiver.stats.dropped_no_key, 2);
  assert.deepEqual(keyframes, []);
  await bobRing.installEpoch(1, SECRET[1], 2);
  assert.deepEqual(keyframes, ['7']); // once, for the receiver's mid
  assert.deepEqual(await receive(receiver, await send(sender, VP8_DELTA)), VP8_DELTA);
  await bobRing.installEpoch(2, SECRET[2], 2);
  assert.deepEqual(keyframes, ['7']); // nothing was missing this time
});

test('after a missing key arrived, a receiver asks again while only delta frames decrypt', async () => {
  // The SFU passes one key frame request per 300 ms upstream: the first request may be absorbed
  // by an earlier one whose key frame came before the key (and was dropped), so ask again.
  const { time, aliceRing, bobRing, sender, receiver, keyframes } = await participants();
  await aliceRing.installEpoch(1, SECRET[1], 1);
  assert.equal(await receive(receiver, await send(sender, VP8_KEY, { type: 'key' }), { type: 'key' }), null);
  await bobRing.installEpoch(1, SECRET[1], 2);
  assert.deepEqual(keyframes, ['7']);
  const delta = async () => receive(receiver, await send(sender, VP8_DELTA));
  assert.deepEqual(await delta(), VP8_DELTA);
  assert.equal(keyframes.length, 1); // not again at once
  time.advance(KEY_FRAME_RETRY_MS);
  assert.deepEqual(await delta(), VP8_DELTA);
  assert.equal(keyframes.length, 2);
  time.advance(KEY_FRAME_RETRY_MS / 2);
  await delta();
  assert.equal(keyframes.length, 2);
  // A key frame ends the wait: later delta frames ask for nothing.
  const key = await send(sender, VP8_KEY, { type: 'key' });
  assert.deepEqual(await receive(receiver, key, { type: 'key' }), VP8_KEY);
  time.advance(KEY_FRAME_RETRY_MS * 5);
  await delta();
  assert.equal(keyframes.length, 2);
  // Without a key frame the asking stops after KEY_FRAME_RETRY_FOR_MS.
  await aliceRing.installEpoch(2, SECRET[2], 1);
  assert.equal(await delta(), null);
  await bobRing.installEpoch(2, SECRET[2], 2);
  assert.equal(keyframes.length, 3);
  for (let t = 0; t < KEY_FRAME_RETRY_FOR_MS; t += KEY_FRAME_RETRY_MS) {
    time.advance(KEY_FRAME_RETRY_MS);
    await delta();
  }
  const asked = keyframes.length;
  assert.ok(asked > 3 && asked <= 3 + KEY_FRAME_RETRY_FOR_MS / KEY_FRAME_RETRY_MS, String(asked));
  time.advance(KEY_FRAME_RETRY_MS);
  await delta();
  assert.equal(keyframes.length, asked);
});

test('the epoch secret may be a non-extractable HKDF CryptoKey', async () => {
  const time = clock();
  const alice = new KeyRing({ now: time.now });
  const bob = new KeyRing({ now: time.now });
  await alice.installEpoch(4, await importBaseKey(SECRET[0]), 3);
  await bob.installEpoch(4, SECRET[0], 5);
  const sender = new FrameTransform(alice, { role: 'send', kind: 'audio', context: 0 });
  const receiver = new FrameTransform(bob, { role: 'recv', kind: 'audio', context: 0 });
  const wire = await send(sender, OPUS, { mimeType: 'audio/opus' });
  assert.deepEqual(await receive(receiver, wire, { mimeType: 'audio/opus' }), OPUS);
  await assert.rejects(bob.installEpoch(5, seq(8), 5), RangeError);
});

function streamOf(frames) {
  return new ReadableStream({
    start(controller) {
      for (const f of frames) controller.enqueue(f);
      controller.close();
    },
  });
}

function collector() {
  const frames = [];
  return { frames, writable: new WritableStream({ write: (f) => void frames.push(f) }) };
}

test('the hub: control messages, streams, stats and key frame requests', async () => {
  const posted = [];
  const alice = new TransformHub({ post: (m) => posted.push(m) });
  const bob = new TransformHub({ post: (m) => posted.push(m) });

  // Before any epoch: Alice's sender drops everything.
  let out = collector();
  await alice.attach(streamOf([frame(VP8_KEY, { type: 'key' }), frame(VP8_DELTA)]), out.writable, { role: 'send', kind: 'video', context: 1, mid: '0' });
  assert.equal(out.frames.length, 0);

  await alice.handleMessage({ type: 'epoch', epoch: 3, secret: SECRET[0], leaf: 1 });
  await bob.handleMessage({ type: 'epoch', epoch: 3, secret: SECRET[0], leaf: 2 });
  out = collector();
  await alice.attach(streamOf([frame(VP8_KEY, { type: 'key' }), frame(VP8_DELTA), frame(VP8_DELTA)]), out.writable, { role: 'send', kind: 'video', context: 1, mid: '0' });
  assert.equal(out.frames.length, 3);

  const received = collector();
  const wire = out.frames.map((f) => frame(new Uint8Array(f.data)));
  await bob.attach(streamOf(wire), received.writable, { role: 'recv', kind: 'video', context: 1, mid: '4' });
  assert.deepEqual(received.frames.map((f) => new Uint8Array(f.data)), [VP8_KEY, VP8_DELTA, VP8_DELTA]);

  // Stats of live transforms: keep one open to ask for them.
  let release;
  const open = new ReadableStream({ start: (c) => (release = () => c.close()) });
  const done = bob.attach(open, collector().writable, { role: 'recv', kind: 'audio', context: null, mid: '5' });
  await bob.handleMessage({ type: 'stats', id: 9 });
  const stats = posted.at(-1);
  assert.equal(stats.type, 'stats');
  assert.equal(stats.id, 9);
  assert.equal(stats.epoch, 3);
  assert.deepEqual(stats.transforms['5/recv'], { role: 'recv', kind: 'audio', context: null, mid: '5', encrypted: 0, decrypted: 0, dropped_no_key: 0, failed_auth: 0, dropped_codec: 0, errors: 0 });
  release();
  await done;

  await bob.handleMessage({ type: 'reset' });
  assert.equal(bob.ring.currentEpoch, null);
  await bob.handleMessage({ type: 'epoch', epoch: 1, secret: seq(4), leaf: 2 });
  assert.match(posted.at(-1).message, /epoch 1 not installed/);
  await alice.attach(streamOf([]), collector().writable, { role: 'sideways', kind: 'video', context: 1 });
  assert.match(posted.at(-1).message, /transform not started/);
  await alice.attach(streamOf([]), collector().writable, { role: 'send', kind: 'video', context: null });
  assert.match(posted.at(-1).message, /bad context/);
});
