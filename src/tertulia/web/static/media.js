// RTCPeerConnection handling for the negotiate-once receive-slot design (docs/protocol.md).
// No DOM beyond MediaStreams.

// The camera resolution asked for, by height (16:9), as Jitsi's `config.resolution` (also a URL
// fragment override: #config.resolution=360). 720 by default: Chrome sends three simulcast
// layers (320x180, 640x360, 1280x720) only from 960x540 up, two at 640x360.
export const RESOLUTIONS = [180, 360, 540, 720, 1080];
export const DEFAULT_RESOLUTION = 720;
const camera = { height: DEFAULT_RESOLUTION };

/** Set the camera height for later getUserMedia calls; anything not in RESOLUTIONS is ignored. */
export function setCameraResolution(height) {
  const h = Number(height);
  if (RESOLUTIONS.includes(h)) camera.height = h;
  return camera.height;
}

/** getUserMedia video constraints for a camera `height` pixels tall (16:9). Pure. */
export function cameraConstraints(height) {
  return {
    width: { ideal: Math.round((height * 16) / 9) },
    height: { ideal: height },
    frameRate: { ideal: 30 },
  };
}

const ICE_GATHERING_TIMEOUT_MS = 5000;

// Devices chosen on the prejoin screen (deviceId or null for the default), used for every
// later getUserMedia, e.g. when unmuting in the meeting. 'ideal': a device that went away
// falls back to another one instead of failing.
const preferred = { audio: null, video: null };

export function setPreferredDevices({ audio, video } = {}) {
  if (audio !== undefined) preferred.audio = audio || null;
  if (video !== undefined) preferred.video = video || null;
}

function audioConstraints() {
  return preferred.audio ? { deviceId: { ideal: preferred.audio } } : true;
}

function videoConstraints() {
  const base = cameraConstraints(camera.height);
  return preferred.video ? { ...base, deviceId: { ideal: preferred.video } } : base;
}

function describeMediaError(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'permission was denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'no device was found';
    case 'NotReadableError':
    case 'AbortError':
      return 'the device is in use or cannot be opened';
    case 'TypeError':
      return 'they need HTTPS (or localhost)';
    default:
      return (err && err.message) || 'unknown error';
  }
}

/**
 * Acquire microphone and/or camera. Never throws: returns {stream, audioError, videoError}.
 * Tries both together first, then each one alone, so one missing device does not cost the other.
 */
export async function getLocalMedia({ audio = true, video = true } = {}) {
  const stream = new MediaStream();
  let audioError = null;
  let videoError = null;
  const md = globalThis.navigator && navigator.mediaDevices;
  if (!md || !md.getUserMedia) {
    const msg = describeMediaError({ name: 'TypeError' });
    return { stream, audioError: audio ? msg : null, videoError: video ? msg : null };
  }
  if (!audio && !video) return { stream, audioError, videoError };
  try {
    const s = await md.getUserMedia({ audio: audio ? audioConstraints() : false, video: video ? videoConstraints() : false });
    s.getTracks().forEach((t) => stream.addTrack(t));
    return { stream, audioError, videoError };
  } catch (err) {
    if (!(audio && video)) {
      const msg = describeMediaError(err);
      return { stream, audioError: audio ? msg : null, videoError: video ? msg : null };
    }
  }
  try {
    const s = await md.getUserMedia({ audio: audioConstraints() });
    s.getTracks().forEach((t) => stream.addTrack(t));
  } catch (err) {
    audioError = describeMediaError(err);
  }
  try {
    const s = await md.getUserMedia({ video: videoConstraints() });
    s.getTracks().forEach((t) => stream.addTrack(t));
  } catch (err) {
    videoError = describeMediaError(err);
  }
  return { stream, audioError, videoError };
}

/** getUserMedia for one kind (that exact device when given); throws an Error with a readable message. */
export async function getTrack(kind, deviceId = null) {
  const exact = deviceId ? { deviceId: { exact: deviceId } } : null;
  try {
    const s = await navigator.mediaDevices.getUserMedia(kind === 'audio'
      ? { audio: exact || audioConstraints() }
      : { video: exact ? { ...cameraConstraints(camera.height), ...exact } : videoConstraints() });
    return s.getTracks()[0];
  } catch (err) {
    const e = new Error(`${kind === 'audio' ? 'Microphone' : 'Camera'}: ${describeMediaError(err)}`);
    e.cause = err;
    throw e;
  }
}

function waitForIceGathering(pc, timeout) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const onCandidate = (ev) => { if (!ev.candidate) done(); };
    const timer = setTimeout(done, timeout);
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/**
 * getDisplayMedia({video: true}) → its video track; throws an Error with a readable message
 * (err.cancelled is true when the user dismissed the picker).
 */
export async function getDisplayTrack() {
  const md = globalThis.navigator && navigator.mediaDevices;
  if (!md || !md.getDisplayMedia) throw new Error('Screen sharing is not supported by this browser');
  try {
    const s = await md.getDisplayMedia({ video: true });
    const track = s.getVideoTracks()[0];
    if (!track) throw Object.assign(new Error('no screen was chosen'), { name: 'NotFoundError' });
    try { track.contentHint = 'detail'; } catch { /* optional */ }
    return track;
  } catch (err) {
    const cancelled = err && err.name === 'NotAllowedError';
    const e = new Error(cancelled ? 'Screen sharing was cancelled' : `Screen sharing: ${describeMediaError(err)}`);
    e.cancelled = cancelled;
    e.cause = err;
    throw e;
  }
}

// The bridge forwards Opus and VP8 only (docs/protocol.md). Offering just those keeps the
// offer small: with every codec Chrome knows, 22 m-lines make a ~70 KB offer. RTX stays: the
// bridge retransmits on it and pads with it to probe a receiver's bandwidth.
const CODECS = { audio: /^audio\/opus$/i, video: /^video\/(vp8|rtx)$/i };

function preferCodecs(transceiver, kind) {
  try {
    const caps = RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities(kind);
    const codecs = caps ? caps.codecs.filter((c) => CODECS[kind].test(c.mimeType)) : [];
    if (codecs.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(codecs);
  } catch (err) {
    console.info('tertulia: codec preferences not applied', err);
  }
}

/**
 * One peer connection towards the bridge, transceivers in the order of docs/protocol.md: send
 * audio, send camera, send screen (no track until sharing), `slots` receive pairs (audio, video),
 * then the screen slot (receive video).
 * Events: 'connectionstatechange' (detail = pc.connectionState), 'localstream' (detail = the new
 * local MediaStream whenever the set of local tracks changes).
 */
export const SIMULCAST_LAYERS = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];

/**
 * Layer suspension: turn off the camera layers taller than what any receiver wants
 * (`sender-constraints` from the bridge; -1 no limit, 0 nobody watches). The lowest layer stays
 * on whenever someone watches at all. Pure: returns the `active` flag per encoding.
 */
export function activeLayers(encodings, trackHeight, maxHeight) {
  if (maxHeight < 0) return encodings.map(() => true);
  if (maxHeight === 0) return encodings.map(() => false);
  return encodings.map((enc, i) => {
    const height = trackHeight / (enc.scaleResolutionDownBy || 1);
    return i === 0 || height <= maxHeight;
  });
}

export class MediaSession extends EventTarget {
  /**
   * Apply the bridge's `sender-constraints` to the camera's simulcast encodings. Calls are
   * queued and each applies the latest value: two overlapping setParameters calls race (the
   * second one's transaction is stale and fails), which could leave every layer off.
   */
  applySenderConstraints(maxHeight) {
    this.maxHeightWanted = maxHeight;
    this._layersApplied = (this._layersApplied || Promise.resolve())
      .then(() => this._applyLayers())
      .catch((err) => console.warn('tertulia: could not apply sender constraints', err));
    return this._layersApplied;
  }

  async _applyLayers() {
    const maxHeight = this.maxHeightWanted;
    const sender = this.videoTransceiver.sender;
    const params = sender.getParameters();
    if (!params.encodings || params.encodings.length < 2) return;
    const settings = sender.track ? sender.track.getSettings() : {};
    const height = settings.height || DEFAULT_RESOLUTION;
    const active = activeLayers(params.encodings, height, maxHeight);
    let changed = false;
    params.encodings.forEach((enc, i) => {
      if (enc.active !== active[i]) { enc.active = active[i]; changed = true; }
    });
    if (changed) {
      try { await sender.setParameters(params); } catch (err) {
        console.warn('tertulia: could not apply sender constraints', err);
      }
    }
  }

  constructor({ slots = 0, iceServers = [] } = {}) {
    super();
    this.slots = slots;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    this.audioTransceiver = this.pc.addTransceiver('audio', { direction: 'sendonly' });
    // Camera as three simulcast layers, lowest first (the bridge picks one per receiver):
    // with the default 1280x720 capture that is 320x180, 640x360 and 1280x720.
    this.videoTransceiver = this.pc.addTransceiver('video', {
      direction: 'sendonly',
      sendEncodings: SIMULCAST_LAYERS.map((layer) => ({ ...layer })),
    });
    this.screenSender = this.pc.addTransceiver('video', { direction: 'sendonly' });
    this.slotTransceivers = [];
    this.slotStreams = [];
    for (let i = 0; i < slots; i++) {
      const audio = this.pc.addTransceiver('audio', { direction: 'recvonly' });
      const video = this.pc.addTransceiver('video', { direction: 'recvonly' });
      this.slotTransceivers.push({ audio, video });
      // Built from the receivers themselves: transceiver 3+2i is audio, 4+2i is video.
      this.slotStreams.push(new MediaStream([audio.receiver.track, video.receiver.track]));
    }
    this.screenTransceiver = this.pc.addTransceiver('video', { direction: 'recvonly' });
    this.screenStream = new MediaStream([this.screenTransceiver.receiver.track]);
    for (const t of this.pc.getTransceivers()) preferCodecs(t, t.receiver.track.kind);
    this.screenTrack = null; // own screen share, while sharing
    this.maxHeightWanted = -1; // from the bridge's sender-constraints
    this.audioTrack = null;
    this.videoTrack = null;
    this.audioMuted = false;
    this.videoMuted = false;
    this.localStream = new MediaStream();
    this.closed = false;
    this.pc.addEventListener('connectionstatechange', () => {
      this.dispatchEvent(new CustomEvent('connectionstatechange', { detail: this.pc.connectionState }));
    });
  }

  /** The receiving MediaStream of slot i (audio + video of whoever occupies it). */
  slotStream(i) {
    return this.slotStreams[i] || null;
  }

  /** Send `track` (a display capture) on the screen transceiver, or nothing (null). */
  async setScreenTrack(track) {
    this.screenTrack = track || null;
    if (!this.closed) await this.screenSender.sender.replaceTrack(this.screenTrack);
  }

  _updateLocalStream() {
    this.localStream = new MediaStream([this.audioTrack, this.videoTrack].filter(Boolean));
    this.dispatchEvent(new CustomEvent('localstream', { detail: this.localStream }));
  }

  /**
   * Attach local tracks (from getUserMedia) to the two send transceivers. A muted camera is
   * stopped and not attached; a muted microphone is attached disabled. Missing tracks leave the
   * sender without a track.
   */
  async useLocalStream(stream, { audioMuted = false, videoMuted = false } = {}) {
    const audio = stream ? stream.getAudioTracks()[0] || null : null;
    let video = stream ? stream.getVideoTracks()[0] || null : null;
    this.audioMuted = audioMuted;
    this.videoMuted = videoMuted;
    if (video && videoMuted) {
      video.stop();
      video = null;
    }
    if (audio) audio.enabled = !audioMuted;
    this.audioTrack = audio;
    this.videoTrack = video;
    await this.audioTransceiver.sender.replaceTrack(audio);
    await this.videoTransceiver.sender.replaceTrack(video);
    this._updateLocalStream();
  }

  /** Mute: disable the mic track. Unmute: enable it, acquiring a microphone if there is none. */
  async setAudioMuted(muted) {
    if (!muted && !this.audioTrack) {
      const track = await getTrack('audio');
      if (this.closed) { track.stop(); return; }
      this.audioTrack = track;
      await this.audioTransceiver.sender.replaceTrack(track);
      this._updateLocalStream();
    }
    if (this.audioTrack) this.audioTrack.enabled = !muted;
    this.audioMuted = muted;
  }

  /** Mute: stop the camera and send nothing. Unmute: open the camera again. */
  async setVideoMuted(muted) {
    if (muted) {
      this.videoMuted = true;
      const old = this.videoTrack;
      this.videoTrack = null;
      if (!this.closed) await this.videoTransceiver.sender.replaceTrack(null);
      if (old) old.stop();
      this._updateLocalStream();
      return;
    }
    if (this.videoTrack) { this.videoMuted = false; return; }
    const track = await getTrack('video');
    if (this.closed) { track.stop(); return; }
    this.videoTrack = track;
    this.videoMuted = false;
    await this.videoTransceiver.sender.replaceTrack(track);
    this._updateLocalStream();
  }

  /**
   * Use another camera or microphone (that exact device) on the same sending transceiver:
   * replaceTrack, no renegotiation; the old track is stopped afterwards. A muted microphone stays
   * muted (the new track is disabled). With the camera off, or no microphone open yet, nothing is
   * opened: returns false (the caller remembers the choice for later).
   */
  async switchDevice(kind, deviceId) {
    const audio = kind === 'audio';
    const old = audio ? this.audioTrack : this.videoTrack;
    if (!old || (!audio && this.videoMuted)) return false;
    let track;
    let failure = null;
    try {
      track = await getTrack(kind, deviceId);
    } catch (err) {
      // Some devices cannot be opened twice (or a camera cannot run two captures): free the old
      // one and try again once; if that fails too, put the previous device back.
      if (!['NotReadableError', 'AbortError'].includes(err.cause && err.cause.name)) throw err;
      const previous = old.getSettings().deviceId || null;
      old.stop();
      try {
        track = await getTrack(kind, deviceId);
      } catch (err2) {
        failure = err2;
        track = await getTrack(kind, previous);
      }
    }
    const current = audio ? this.audioTrack : this.videoTrack;
    if (this.closed || current !== old || (!audio && this.videoMuted)) { track.stop(); return false; }
    if (audio) {
      track.enabled = !this.audioMuted;
      this.audioTrack = track;
    } else {
      this.videoTrack = track;
    }
    await (audio ? this.audioTransceiver : this.videoTransceiver).sender.replaceTrack(track);
    old.stop();
    this._updateLocalStream();
    if (failure) throw failure;
    return true;
  }

  /** createOffer → setLocalDescription → wait for ICE gathering (≤ 5 s) → the full SDP. */
  async createOffer() {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    await waitForIceGathering(this.pc, ICE_GATHERING_TIMEOUT_MS);
    return this.pc.localDescription.sdp;
  }

  async setAnswer(sdp) {
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  getStats(selector) {
    return this.pc.getStats(selector);
  }

  /** Close the peer connection; local tracks are stopped unless stopTracks is false. */
  close({ stopTracks = true } = {}) {
    if (this.closed) return;
    this.closed = true;
    if (stopTracks) {
      if (this.audioTrack) this.audioTrack.stop();
      if (this.videoTrack) this.videoTrack.stop();
      if (this.screenTrack) this.screenTrack.stop();
    }
    try { this.pc.close(); } catch { /* ignore */ }
  }
}
