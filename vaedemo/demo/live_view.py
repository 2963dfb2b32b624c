"""The browser mode's moving picture: what the microphone sends, the latents the model decodes and what it plays,
scrolling as they happen, so that a room sees the latent space move while it hears it.

A canvas, one column per hop (the newest on the right): the microphone's spectrum on top, one row per latent
dimension in the middle (after the Latent scale and noise sliders: what the decoder is given), the model's sound at
the bottom. The page's script (:mod:`vaedemo.demo.browser_live`) hands the view each hop it computes: the
microphone's samples, the latents and the samples to be played. The view draws the spectrum of the last FFT_SIZE
samples of each, as a Web Audio analyser would (Blackman window, dB re full scale, log frequency, the figures' Magma
colours), so that a column shows that hop's sound and latents together: an analyser read when the hop is computed
shows whatever the sound card passes at that moment, and a burst of hops computed after a stall would all show the
same moment. Nothing here reaches the server.
"""

from __future__ import annotations

import json

import gradio as gr
import plotly.colors

COLUMNS = 480  # hops shown: 5.6 s of a model at 44.1 kHz and 512 samples a hop
SPECTRUM_ROWS = 64  # pixels of each spectrum, log frequency from LOWEST_HZ to half the rate
LOWEST_HZ = 40.0
FFT_SIZE = 2048  # samples in each column's spectrum (four hops of 512: 46 ms at 44.1 kHz)
DB_RANGE = (-100.0, -20.0)  # the spectra's dB (re full scale) spread over the colours
LATENT_RANGE = 3.0  # latents from -3 to +3 (the prior's standard deviations) spread over the colours: 0 is the middle
LATENT_PIXELS = 96  # the latent strip's height at most (each dimension's row 1-4 pixels)
GAP = 2  # black pixels between the strips


def box() -> gr.HTML:
    """The canvas and its caption (made unrendered: the tab places it); the script sizes it for the model."""
    return gr.HTML("<canvas id='browser-live-view' width='0' height='0'></canvas>"
                   "<div id='browser-live-view-caption'></div>", elem_id="browser-live-view-box",
                   render=False)  # fmt: skip


SETTINGS = json.dumps({"columns": COLUMNS, "spectrumRows": SPECTRUM_ROWS, "lowestHz": LOWEST_HZ, "fftSize": FFT_SIZE,
                       "db": DB_RANGE, "latentRange": LATENT_RANGE, "latentPixels": LATENT_PIXELS, "gap": GAP,
                       "colours": plotly.colors.sequential.Magma})  # fmt: skip

# The view's script (run once when the page loads): view.attach(info) sizes the canvas for a model; view.hop(heard,
# latents, frames, played) draws one column; view.spectrum(samples) is a column's spectrum (bytes, as an analyser's
# getByteFrequencyData); view.layout says where each strip lies (rows of the canvas), for whoever reads it back.
JS = r"""
() => {
  const S = __SETTINGS__, N = S.fftSize;
  // the colour scale as 256 RGB entries, interpolated between the figures' Magma stops
  const stops = S.colours.map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const lut = Array.from({length: 256}, (_, k) => {
    const at = k / 255 * (stops.length - 1), i = Math.min(Math.floor(at), stops.length - 2), f = at - i;
    return stops[i].map((c, j) => Math.round(c + f * (stops[i + 1][j] - c)));
  });
  const view = window.vaedemoLiveView = {layout: null, columns: 0};

  // a radix-2 FFT of N points: the Blackman window, the bit-reversed order and the twiddles computed once
  const bits = Math.log2(N), reversed = new Uint32Array(N), cos = new Float32Array(N / 2), sin = new Float32Array(N / 2);
  for (let i = 0; i < N; i++) for (let b = 0; b < bits; b++) reversed[i] |= ((i >> b) & 1) << (bits - 1 - b);
  for (let k = 0; k < N / 2; k++) { cos[k] = Math.cos(2 * Math.PI * k / N); sin[k] = -Math.sin(2 * Math.PI * k / N); }
  const blackman = Float32Array.from({length: N}, (_, n) =>
    0.42 - 0.5 * Math.cos(2 * Math.PI * n / N) + 0.08 * Math.cos(4 * Math.PI * n / N));
  const re = new Float32Array(N), im = new Float32Array(N), bytes = new Uint8Array(N / 2);
  // the spectrum of N samples as an analyser gives it: |X| / N in dB, S.db spread over 0-255
  view.spectrum = (samples) => {
    for (let i = 0; i < N; i++) { re[reversed[i]] = blackman[i] * samples[i]; im[reversed[i]] = 0; }
    for (let size = 2; size <= N; size *= 2) {
      const half = size / 2, step = N / size;
      for (let start = 0; start < N; start += size) for (let j = 0; j < half; j++) {
        const a = start + j, b = a + half, wr = cos[j * step], wi = sin[j * step];
        const tr = wr * re[b] - wi * im[b], ti = wr * im[b] + wi * re[b];
        re[b] = re[a] - tr; im[b] = im[a] - ti; re[a] += tr; im[a] += ti;
      }
    }
    for (let k = 0; k < N / 2; k++) {
      const db = 20 * Math.log10(Math.hypot(re[k], im[k]) / N + 1e-30);
      bytes[k] = Math.max(0, Math.min(255, Math.floor(255 * (db - S.db[0]) / (S.db[1] - S.db[0]))));
    }
    return bytes;
  };

  // each spectrum row's bins (log frequency): the loudest bin of a row is drawn, so that a narrow peak shows
  const rowBins = (bins, rate) => Array.from({length: S.spectrumRows}, (_, r) => {
    const hz = (q) => S.lowestHz * Math.pow(rate / 2 / S.lowestHz, q / S.spectrumRows);
    const lo = Math.floor(hz(r) / (rate / 2) * bins), hi = Math.ceil(hz(r + 1) / (rate / 2) * bins);
    return [Math.min(lo, bins - 1), Math.min(Math.max(hi, lo + 1), bins)];
  });

  view.attach = (info) => {
    const canvas = document.querySelector('#browser-live-view');
    if (!canvas) return;
    const m = info.model, dims = m.latent_size, rowPx = Math.max(1, Math.min(4, Math.floor(S.latentPixels / dims)));
    view.recent = [new Float32Array(N), new Float32Array(N)];  // the last N samples heard and played
    view.bins = rowBins(N / 2, m.sample_rate);
    const latentTop = S.spectrumRows + S.gap;
    view.layout = {microphone: [0, S.spectrumRows], latents: [latentTop, latentTop + dims * rowPx],
                   output: [latentTop + dims * rowPx + S.gap, latentTop + dims * rowPx + S.gap + S.spectrumRows],
                   dims, rowPx, middle: lut[128]};
    canvas.width = S.columns;
    canvas.height = view.layout.output[1];
    canvas.title = 'Click: full screen (for a projector); Esc or a click: back';
    canvas.onclick = () => {  // (a refused request, as in a frame that may not go full screen, leaves it as it is)
      const change = document.fullscreenElement ? document.exitFullscreen() : canvas.requestFullscreen();
      change.catch(() => {});
    };
    view.context2d = canvas.getContext('2d');
    view.context2d.fillStyle = 'black';
    view.context2d.fillRect(0, 0, canvas.width, canvas.height);
    view.column = view.context2d.createImageData(1, canvas.height);
    view.columns = 0;
    const seconds = S.columns * m.hop / m.sample_rate;
    const caption = document.querySelector('#browser-live-view-caption');
    if (caption) caption.textContent = `Top: the microphone; middle: the ${dims} latents the model decodes (one row ` +
      `each, dark -${S.latentRange} to bright +${S.latentRange}); bottom: the model's sound. Spectra from ` +
      `${S.lowestHz} Hz up, log frequency; the last ${seconds.toFixed(1)} s. Click it for full screen.`;
  };

  view.hop = (heard, latents, frames, played) => {
    if (!view.context2d) return;
    const L = view.layout, px = view.column.data, canvas = view.context2d.canvas;
    const paint = (row, rgb) => { const o = 4 * row; px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2]; px[o + 3] = 255; };
    px.fill(0);
    for (let i = 3; i < px.length; i += 4) px[i] = 255;  // the gaps: opaque black
    [[L.microphone, heard], [L.output, played]].forEach(([[, bottom], samples], k) => {
      const recent = view.recent[k], n = Math.min(samples.length, N);  // the hop's samples shifted in
      recent.copyWithin(0, n);
      recent.set(samples.subarray(samples.length - n), N - n);
      const spectrum = view.spectrum(recent);
      view.bins.forEach(([lo, hi], r) => {
        let v = 0;
        for (let b = lo; b < hi; b++) v = Math.max(v, spectrum[b]);
        paint(bottom - 1 - r, lut[v]);  // low frequencies at the strip's bottom
      });
    });
    for (let d = 0; d < L.dims; d++) {  // the hop's last frame
      const v = latents[d * frames + frames - 1] || 0;  // (a value that is not a number: the middle)
      const t = (Math.max(-1, Math.min(1, v / S.latentRange)) + 1) / 2;
      const rgb = lut[Math.round(t * 255)];
      for (let p = 0; p < L.rowPx; p++) paint(L.latents[0] + d * L.rowPx + p, rgb);
    }
    view.context2d.drawImage(canvas, -1, 0);  // scroll one column left, the newest on the right
    view.context2d.putImageData(view.column, canvas.width - 1, 0);
    view.columns++;
  };

  view.detach = () => { view.context2d = null; };  // (the picture stays, to be talked about; the next start clears it)
}
""".replace("__SETTINGS__", SETTINGS)
