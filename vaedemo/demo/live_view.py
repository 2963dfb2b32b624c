"""The browser mode's moving picture: what the microphone sends, the latents the model decodes and what it plays,
scrolling as they happen, so that a room sees the latent space move while it hears it.

A canvas, one column per hop (the newest on the right): the microphone's spectrum on top, one row per latent
dimension in the middle (after the Latent scale and noise sliders: what the decoder is given), the model's sound at
the bottom. The spectra come from the Web Audio analysers of the microphone and of the played output (log
frequency, in the figures' Magma colours); the page's script (:mod:`vaedemo.demo.browser_live`) calls the view at
each computed hop. Nothing here reaches the server.
"""

from __future__ import annotations

import json

import gradio as gr
import plotly.colors

COLUMNS = 480  # hops shown: 5.6 s of a model at 44.1 kHz and 512 samples a hop
SPECTRUM_ROWS = 64  # pixels of each spectrum, log frequency from LOWEST_HZ to half the rate
LOWEST_HZ = 40.0
DB_RANGE = (-100.0, -20.0)  # what the analysers' dB (re full scale) spread over the colours
LATENT_RANGE = 3.0  # latents from -3 to +3 (the prior's standard deviations) spread over the colours: 0 is the middle
LATENT_PIXELS = 96  # the latent strip's height at most (each dimension's row 1-4 pixels)
GAP = 2  # black pixels between the strips


def box() -> gr.HTML:
    """The canvas and its caption (made unrendered: the tab places it); the script sizes it for the model."""
    return gr.HTML("<canvas id='browser-live-view' width='0' height='0'></canvas>"
                   "<div id='browser-live-view-caption'></div>", elem_id="browser-live-view-box",
                   render=False)  # fmt: skip


SETTINGS = json.dumps({"columns": COLUMNS, "spectrumRows": SPECTRUM_ROWS, "lowestHz": LOWEST_HZ, "db": DB_RANGE,
                       "latentRange": LATENT_RANGE, "latentPixels": LATENT_PIXELS, "gap": GAP,
                       "colours": plotly.colors.sequential.Magma})  # fmt: skip

# The view's script (run once when the page loads): view.attach(context, microphone, output, info) sizes the canvas
# for a model and listens to the two audio nodes; view.hop(latents, frames) draws one column; view.layout says where
# each strip lies (rows of the canvas), for whoever reads the picture back.
JS = r"""
() => {
  const S = __SETTINGS__;
  // the colour scale as 256 RGB entries, interpolated between the figures' Magma stops
  const stops = S.colours.map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const lut = Array.from({length: 256}, (_, k) => {
    const at = k / 255 * (stops.length - 1), i = Math.min(Math.floor(at), stops.length - 2), f = at - i;
    return stops[i].map((c, j) => Math.round(c + f * (stops[i + 1][j] - c)));
  });
  const view = window.vaedemoLiveView = {layout: null, columns: 0};

  // each spectrum row's analyser bins (log frequency): the loudest bin of a row is drawn, so that a narrow peak shows
  const rowBins = (bins, rate) => Array.from({length: S.spectrumRows}, (_, r) => {
    const hz = (q) => S.lowestHz * Math.pow(rate / 2 / S.lowestHz, q / S.spectrumRows);
    const lo = Math.floor(hz(r) / (rate / 2) * bins), hi = Math.ceil(hz(r + 1) / (rate / 2) * bins);
    return [Math.min(lo, bins - 1), Math.min(Math.max(hi, lo + 1), bins)];
  });

  view.attach = (context, microphone, output, info) => {
    const canvas = document.querySelector('#browser-live-view');
    if (!canvas) return;
    const m = info.model, dims = m.latent_size, rowPx = Math.max(1, Math.min(4, Math.floor(S.latentPixels / dims)));
    const listen = (node) => {
      const a = context.createAnalyser();
      a.fftSize = 2048; a.smoothingTimeConstant = 0; a.minDecibels = S.db[0]; a.maxDecibels = S.db[1];
      node.connect(a);
      return a;
    };
    view.analysers = [listen(microphone), listen(output)];
    view.bins = rowBins(view.analysers[0].frequencyBinCount, context.sampleRate);
    view.spectrum = new Uint8Array(view.analysers[0].frequencyBinCount);
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

  view.hop = (latents, frames) => {
    if (!view.context2d) return;
    const L = view.layout, px = view.column.data, canvas = view.context2d.canvas;
    const paint = (row, rgb) => { const o = 4 * row; px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2]; px[o + 3] = 255; };
    px.fill(0);
    for (let i = 3; i < px.length; i += 4) px[i] = 255;  // the gaps: opaque black
    [L.microphone, L.output].forEach(([top, bottom], k) => {
      view.analysers[k].getByteFrequencyData(view.spectrum);
      view.bins.forEach(([lo, hi], r) => {
        let v = 0;
        for (let b = lo; b < hi; b++) v = Math.max(v, view.spectrum[b]);
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

  view.detach = () => {  // (the picture stays, to be talked about; the next start clears it)
    if (view.analysers) view.analysers.forEach((a) => a.disconnect());
    view.analysers = null; view.context2d = null;
  };
}
""".replace("__SETTINGS__", SETTINGS)
