import pytest
import torch

from vaedemo.nn.pqmf import PQMF


@pytest.mark.parametrize("bands", [2, 4, 8, 16])
def test_analysis_synthesis_reconstructs_white_noise(bands):
    pqmf = PQMF(bands)
    torch.manual_seed(0)
    x = torch.randn(2, 1, bands * 1024)
    y = pqmf.synthesis(pqmf.analysis(x))
    assert y.shape == x.shape
    edge = 2 * pqmf.taps
    err = (y - x)[..., edge:-edge]
    snr = 10 * torch.log10(x[..., edge:-edge].pow(2).sum() / err.pow(2).sum())
    assert snr >= 40, f"{bands} bands: SNR {snr:.1f} dB"


def test_shapes_and_band_layout():
    pqmf = PQMF(4)
    x = torch.randn(3, 2, 4 * 100)
    bands = pqmf.analysis(x)
    assert bands.shape == (3, 8, 100)
    # channel 0's bands come first: analysing channel 1 alone gives rows 4..7
    assert torch.allclose(pqmf.analysis(x[:, 1:2]), bands[:, 4:8], atol=1e-6)
    # a low sine lands in band 0
    t = torch.arange(4 * 512) / 16000
    sine = torch.sin(2 * torch.pi * 300 * t)[None, None]
    energy = pqmf.analysis(sine).pow(2).mean(-1)[0]
    assert energy.argmax() == 0


def test_bands_must_be_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        PQMF(6)


@pytest.mark.parametrize("bands", [2, 16])
@pytest.mark.parametrize("causal", [False, True])
def test_the_polyphase_analysis_is_the_strided_filter_bank(bands, causal):
    """The analysis runs as a stride-1 conv over the input's phases: the same sums as the strided conv of each
    channel with the analysis filters, in float64 to rounding."""
    pqmf = PQMF(bands, causal=causal).double()
    torch.manual_seed(0)
    x = torch.randn(3, 2, bands * 37, dtype=torch.float64)
    b, c, t = x.shape
    padded = torch.nn.functional.pad(x.reshape(b * c, 1, t), (pqmf.lookbehind, pqmf.lookahead))
    want = torch.nn.functional.conv1d(padded, pqmf.h_analysis, stride=bands).reshape(b, c * bands, t // bands)
    assert torch.allclose(pqmf.analysis(x), want, atol=1e-12, rtol=0)
