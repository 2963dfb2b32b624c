import torch

from vaedemo.config import ModelConfig
from vaedemo.nn.flows import RealNVP
from vaedemo.nn.latent import Latent, gaussian_kl


def _randomised(flow: RealNVP) -> RealNVP:
    # a fresh flow is the identity (zero-initialised last layers): perturb so that the tests mean something
    torch.manual_seed(0)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow


def test_fresh_flow_is_identity():
    flow = RealNVP(6, layers=4, hidden=16)
    x = torch.randn(5, 6)
    y, ld = flow(x)
    assert torch.equal(y, x) and torch.equal(ld, torch.zeros(5))


def test_invertible():
    flow = _randomised(RealNVP(7, layers=6, hidden=32))
    x = torch.randn(64, 7)
    y, ld = flow(x)
    x2, ld_inv = flow.inverse(y)
    assert torch.allclose(x2, x, atol=1e-4)
    assert torch.allclose(ld, -ld_inv, atol=1e-4)
    assert not torch.allclose(y, x)


def test_logdet_matches_autograd_jacobian():
    flow = _randomised(RealNVP(6, layers=4, hidden=16)).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    _, ld = flow(x)
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        assert torch.allclose(torch.linalg.slogdet(jac).logabsdet, ld[i], atol=1e-8)
    xi = torch.randn(3, 6, dtype=torch.float64)
    _, ld_inv = flow.inverse(xi)
    jac = torch.autograd.functional.jacobian(lambda v: flow.inverse(v[None])[0][0], xi[0])
    assert torch.allclose(torch.linalg.slogdet(jac).logabsdet, ld_inv[0], atol=1e-8)


def test_scales_are_bounded():
    flow = RealNVP(4, layers=1, hidden=8, bound=0.5)
    with torch.no_grad():
        flow.couplings[0].net[-1].bias.fill_(100.0)
    _, ld = flow(torch.randn(3, 4))
    assert (ld.abs() <= 0.5 * 2 + 1e-6).all()  # 2 transformed dims, |s| < 0.5 each


def test_shapes_at_latent_2048_stay_batch_shaped():
    m = ModelConfig(latent_size=2048, posterior_flow_layers=2, prior_flow_layers=2, flow_hidden=64)
    latent = Latent(m)
    stats = torch.randn(3, 4096)
    z, kl = latent.kl(stats)
    assert z.shape == (3, 2048) and kl.shape == (3,)
    assert latent.prior_log_prob(z).shape == (3,)
    _, ld = latent.prior_flow(z)
    assert ld.shape == (3,)
    # temporal latents: frames are folded into the batch and summed back per example
    stats_t = torch.randn(2, 4096, 5)
    z_t, kl_t = latent.kl(stats_t)
    assert z_t.shape == (2, 2048, 5) and kl_t.shape == (2,)
    samples = latent.sample_prior((4, latent.size, 3))
    assert samples.shape == (4, 2048, 3)


def test_kl_finite_and_zero_for_identical_gaussians():
    mu = torch.randn(4, 10)
    logvar = torch.randn(4, 10)
    assert torch.allclose(gaussian_kl(mu, logvar, mu, logvar), torch.zeros(4, 10), atol=1e-6)
    assert torch.allclose(gaussian_kl(torch.zeros(3), torch.zeros(3)), torch.zeros(3))
    assert (gaussian_kl(mu, logvar) >= 0).all()
    for flows in (0, 2):
        latent = Latent(ModelConfig(latent_size=10, posterior_flow_layers=flows, prior_flow_layers=flows))
        _, kl = latent.kl(torch.randn(4, 20) * 3)
        assert torch.isfinite(kl).all() and kl.shape == (4,)


def test_monte_carlo_kl_matches_analytic_without_flow_effect():
    # identity flows (fresh): the MC estimate averages to the analytic KL
    torch.manual_seed(0)
    latent = Latent(ModelConfig(latent_size=4, posterior_flow_layers=2, prior_flow_layers=2, flow_hidden=8))
    stats = torch.tensor([[0.5, -0.3, 1.0, 0.0, 0.2, -1.0, 0.3, 0.0]]).repeat(20000, 1)
    _, kl_mc = latent.kl(stats)
    mu, std = Latent.split(stats[:1])
    kl = gaussian_kl(mu, 2 * torch.log(std)).sum()
    assert abs(kl_mc.mean() - kl) < 0.05


def test_gradients_reach_every_flow_parameter():
    latent = Latent(ModelConfig(latent_size=6, posterior_flow_layers=2, prior_flow_layers=2, flow_hidden=8))
    _randomised(latent.posterior_flow)
    _randomised(latent.prior_flow)
    _, kl = latent.kl(torch.randn(5, 12))
    kl.mean().backward()
    for name, p in latent.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
