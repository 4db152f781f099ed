// RTCPeerConnection handling for the negotiate-once receive-slot design (docs/protocol.md).
// No DOM beyond MediaStreams.

export const VIDEO_CONSTRAINTS = {
  width: { ideal: 640 },
  height: { ideal: 360 },
  frameRate: { ideal: 30 },
};

const ICE_GATHERING_TIMEOUT_MS = 5000;

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
      return 'media devices are not available on this page (HTTPS is required)';
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
    const s = await md.getUserMedia({ audio: audio || false, video: video ? VIDEO_CONSTRAINTS : false });
    s.getTracks().forEach((t) => stream.addTrack(t));
    return { stream, audioError, videoError };
  } catch (err) {
    if (!(audio && video)) {
      const msg = describeMediaError(err);
      return { stream, audioError: audio ? msg : null, videoError: video ? msg : null };
    }
  }
  try {
    const s = await md.getUserMedia({ audio: true });
    s.getTracks().forEach((t) => stream.addTrack(t));
  } catch (err) {
    audioError = describeMediaError(err);
  }
  try {
    const s = await md.getUserMedia({ video: VIDEO_CONSTRAINTS });
    s.getTracks().forEach((t) => stream.addTrack(t));
  } catch (err) {
    videoError = describeMediaError(err);
  }
  return { stream, audioError, videoError };
}

/** getUserMedia for one kind; throws an Error with a readable message. */
export async function getTrack(kind) {
  try {
    const s = await navigator.mediaDevices.getUserMedia(
      kind === 'audio' ? { audio: true } : { video: VIDEO_CONSTRAINTS });
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
 * One peer connection towards the bridge: send audio, send video, then `slots` receive pairs.
 * Events: 'connectionstatechange' (detail = pc.connectionState), 'localstream' (detail = the new
 * local MediaStream whenever the set of local tracks changes).
 */
export class MediaSession extends EventTarget {
  constructor({ slots = 0, iceServers = [] } = {}) {
    super();
    this.slots = slots;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    this.audioTransceiver = this.pc.addTransceiver('audio', { direction: 'sendonly' });
    this.videoTransceiver = this.pc.addTransceiver('video', { direction: 'sendonly' });
    this.slotTransceivers = [];
    this.slotStreams = [];
    for (let i = 0; i < slots; i++) {
      const audio = this.pc.addTransceiver('audio', { direction: 'recvonly' });
      const video = this.pc.addTransceiver('video', { direction: 'recvonly' });
      this.slotTransceivers.push({ audio, video });
      // Built from the receivers themselves: transceiver 2+2i is audio, 3+2i is video.
      this.slotStreams.push(new MediaStream([audio.receiver.track, video.receiver.track]));
    }
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
    }
    try { this.pc.close(); } catch { /* ignore */ }
  }
}
