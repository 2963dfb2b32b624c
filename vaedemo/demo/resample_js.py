"""A streaming resampler in JavaScript, for the browser mode's AudioWorklet when the sound card runs at another rate
than the model.

Chromium and Safari open an AudioContext at the model's rate and resample the microphone themselves; Firefox refuses
to connect a microphone to a context at another rate than its own ("Connecting AudioNodes from AudioContexts with
different sample-rate is currently not supported"), so there the context runs at the sound card's rate and the
worklet resamples: the microphone to the model's rate on the way in, the model's hops back on the way out.

The filter is a windowed sinc (Blackman window, :data:`ZERO_CROSSINGS` each side, cut off at 0.45 of the lower
rate), one row of taps per fractional position for rational ratios such as 48000/44100 (160/147). Output sample
``n`` lies at input time ``n * from / to`` exactly (integer arithmetic: no drift over an hour), and ``push`` returns
what the samples given so far complete, so any chunking of the input gives the same output (at equal rates, the
input itself). It waits for
``halfWidth`` input samples of look-ahead: 0.6 ms each way between 44.1 and 48 kHz.
"""

from __future__ import annotations

ZERO_CROSSINGS = 24  # of the sinc each side: a flat response to about 18 kHz and aliases 58 dB down between 44.1/48 kHz
CUTOFF = 0.45  # of the lower rate: the filter's middle, below that rate's Nyquist (0.5) by half its transition
MAX_TABLE_ROWS = 4096  # rational ratios with more fractional positions compute their taps as they go

# (no backticks and no "${" in it: it is placed inside the worklet's source, a template string)
JS = r"""
class VaedemoResampler {
  // the filter's middle in cycles per input sample (going down: the output's band)
  static cutoff(from, to) { return __CUTOFF__ * Math.min(1, to / from); }
  // input samples each side of an output's time: the look-ahead, which the page counts without building the filter
  static halfWidthOf(from, to) { return Math.ceil(__ZEROS__ / (2 * VaedemoResampler.cutoff(from, to))); }
  constructor(from, to) {
    const gcd = (a, b) => (b ? gcd(b, a % b) : a), g = gcd(from, to);
    this.same = from === to;
    this.up = to / g; this.down = from / g;  // output n lies at input time n * down / up
    const fc = VaedemoResampler.cutoff(from, to), W = this.halfWidth = VaedemoResampler.halfWidthOf(from, to);
    this.kernel = (t) => {  // the windowed sinc at t input samples
      if (Math.abs(t) >= W) return 0;
      const x = 2 * fc * t, sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      return 2 * fc * sinc * (0.42 + 0.5 * Math.cos(Math.PI * t / W) + 0.08 * Math.cos(2 * Math.PI * t / W));
    };
    this.rows = this.up <= __MAX_ROWS__ ? Array.from({length: this.up}, (_, p) => this.taps(p)) : null;
    this.buffer = new Float32Array(4096);
    this.length = W;  // W samples of silence before the first: its first outputs' past
    this.at = W; this.phase = 0;  // the next output's input index in the buffer, and its fraction (phase / up)
  }
  taps(phase) {  // the 2W taps for an output at fraction phase / up past an input sample, summing to 1 (DC kept)
    const W = this.halfWidth, f = phase / this.up, taps = new Float32Array(2 * W);
    let sum = 0;
    for (let k = 0; k < 2 * W; k++) { taps[k] = this.kernel(k - W + 1 - f); sum += taps[k]; }
    for (let k = 0; k < 2 * W; k++) taps[k] /= sum;
    return taps;
  }
  push(x) {
    if (this.same) return x;  // (the same array: the worklet copies what it keeps)
    if (this.length + x.length > this.buffer.length) {
      const grown = new Float32Array(2 * (this.length + x.length));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(x, this.length);
    this.length += x.length;
    const W = this.halfWidth, b = this.buffer;
    const out = new Float32Array(Math.max(0, Math.ceil((this.length - W - this.at + 1) * this.up / this.down) + 1));
    let n = 0;
    while (this.at + W < this.length) {
      const taps = this.rows ? this.rows[this.phase] : this.taps(this.phase), base = this.at - W + 1;
      let s = 0;
      for (let k = 0; k < taps.length; k++) s += b[base + k] * taps[k];
      out[n++] = s;
      this.phase += this.down;
      this.at += Math.floor(this.phase / this.up);
      this.phase %= this.up;
    }
    const done = this.at - W + 1;  // samples no output needs any more
    if (done > 0) { b.copyWithin(0, done, this.length); this.length -= done; this.at -= done; }
    return out.subarray(0, n);
  }
}
""".replace("__CUTOFF__", repr(CUTOFF)).replace("__ZEROS__", str(ZERO_CROSSINGS)).replace("__MAX_ROWS__", str(MAX_TABLE_ROWS))
