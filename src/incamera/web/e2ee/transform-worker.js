// The E2EE encoded-transform worker (a module worker: new Worker(url, {type: 'module'})).
//
// One worker serves every transform of a page and holds the page's SFrame keys:
//  (a) RTCRtpScriptTransform: new RTCRtpScriptTransform(worker, options) fires
//      'rtctransform' here with event.transformer.{readable, writable, options};
//  (b) legacy createEncodedStreams(): the page posts
//      {type: 'stream', readable, writable, options} (transferring both streams).
// options = {role: 'send'|'recv', kind: 'audio'|'video', context: 0..3, mid?: string}.
// Control messages from the page: {type: 'epoch', epoch, secret, leaf}, {type: 'reset'},
// {type: 'stats', id?}. To the page: {type: 'keyframe', mid}, {type: 'stats', ...},
// {type: 'error', message}. The logic lives in frame-crypto.js.

import { TransformHub } from './frame-crypto.js';

const hub = new TransformHub({ post: (message) => self.postMessage(message) });

self.addEventListener('rtctransform', (event) => {
  const { transformer } = event;
  hub.attach(transformer.readable, transformer.writable, transformer.options, transformer);
});

self.addEventListener('message', (event) => {
  hub.handleMessage(event.data);
});
