// The camera: getUserMedia -> <video> preview (mirrored by CSS only) -> frames drawn to a canvas -> JPEG blobs.
// Frames are raw (not mirrored), at most 640 px on the long side, held in memory only until they are posted.
//
// Capture schedule (milliseconds from the moment the freshly opened stream shows its first frame):
//   lead:  3 frames at 500, 1000, 1500 (looking straight at the camera)
//   each challenge step k (0, 1, 2): instruction shown at 1500 + 3000 k; 8 frames every 375 ms after it
//   tail:  2 frames at 500 and 1000 after the last step (back to the front)
// The browser tests build their fake-camera video on the same timetable (tests/browser/camera.py).
"use strict";
(function () {
  const SCHEDULE = { leadFrames: 3, leadIntervalMs: 500, stepMs: 3000, stepFrames: 8, tailFrames: 2, tailIntervalMs: 500 };
  const MAX_SIDE = 640;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  class CameraError extends Error {
    constructor(code, ja, en) { super(en); this.code = code; this.ja = ja; this.en = en; }
  }

  class Camera {
    constructor(video, canvas) {
      this.video = video;
      this.canvas = canvas;
      this.stream = null;
      this.aborted = false;
    }

    async open() {
      this.close();
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw new CameraError("no_camera", "この端末ではカメラを使えません。", "No camera is available on this device.");
      }
      try {
        this.stream = await navigator.mediaDevices.getUserMedia({
          video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false,
        });
      } catch (e) {
        const denied = e && (e.name === "NotAllowedError" || e.name === "SecurityError");
        throw denied
          ? new CameraError("camera_denied", "カメラの使用が許可されていません。", "Camera access was not allowed.")
          : new CameraError("no_camera", "カメラを起動できませんでした。", "The camera could not be started.");
      }
      this.video.srcObject = this.stream;
      await new Promise((resolve) => {
        if (this.video.readyState >= 2) resolve();
        else this.video.addEventListener("loadeddata", resolve, { once: true });
      });
      try { await this.video.play(); } catch (e) { /* autoplay of a muted stream is allowed */ }
    }

    close() {
      if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
      this.stream = null;
      if (this.video) this.video.srcObject = null;
    }

    /** One JPEG of the current video frame. */
    grab(quality = 0.88) {
      const width = this.video.videoWidth;
      const height = this.video.videoHeight;
      if (!width || !height) return Promise.reject(new CameraError("no_frame", "カメラの映像がありません。", "No camera picture."));
      const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
      this.canvas.width = Math.round(width * scale);
      this.canvas.height = Math.round(height * scale);
      const context = this.canvas.getContext("2d");
      context.drawImage(this.video, 0, 0, this.canvas.width, this.canvas.height);
      return new Promise((resolve, reject) => {
        this.canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new CameraError("no_frame", "撮影できませんでした。", "Capture failed."))),
          "image/jpeg", quality);
      });
    }

    /** Capture the liveness sequence. `onStep(index)` shows instruction `index` (-1: look at the camera,
     *  steps.length: back to the front); `onProgress(fraction)` drives the progress bar. Returns the JPEG blobs. */
    async captureChallenge(steps, { onStep, onProgress }) {
      this.aborted = false;
      await this.open();  // a fresh stream: the timetable starts at its first frame
      const total = SCHEDULE.leadFrames + steps.length * SCHEDULE.stepFrames + SCHEDULE.tailFrames;
      const frames = [];
      const origin = performance.now();
      const at = async (ms) => {
        const wait = origin + ms - performance.now();
        if (wait > 0) await sleep(wait);
        if (this.aborted) throw new CameraError("aborted", "中止しました。", "Cancelled.");
      };
      const take = async () => {
        frames.push(await this.grab());
        onProgress(frames.length / total);
      };
      onStep(-1);
      for (let i = 1; i <= SCHEDULE.leadFrames; i += 1) { await at(i * SCHEDULE.leadIntervalMs); await take(); }
      const lead = SCHEDULE.leadFrames * SCHEDULE.leadIntervalMs;
      const every = SCHEDULE.stepMs / SCHEDULE.stepFrames;
      for (let k = 0; k < steps.length; k += 1) {
        await at(lead + k * SCHEDULE.stepMs);
        onStep(k);
        for (let i = 1; i <= SCHEDULE.stepFrames; i += 1) { await at(lead + k * SCHEDULE.stepMs + i * every); await take(); }
      }
      const tail = lead + steps.length * SCHEDULE.stepMs;
      onStep(steps.length);
      for (let i = 1; i <= SCHEDULE.tailFrames; i += 1) { await at(tail + i * SCHEDULE.tailIntervalMs); await take(); }
      return frames;
    }

    abort() { this.aborted = true; this.close(); }
  }

  window.JPKI = Object.assign(window.JPKI || {}, { Camera, CameraError, CAMERA_SCHEDULE: SCHEDULE });
})();
