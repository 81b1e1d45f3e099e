"""MNIW: closed-form expectations, KL, conjugacy and natural steps against known answers."""

import math

import pytest
from solar_ros.core.mniw import LDSSuffStats, MNIW, mniw_natural_step
import torch


def _random_mniw(seed: int, n: int = 2, m: int = 3, batch=(2,)) -> MNIW:
    """Return a random well-conditioned MNIW with leading dims ``batch``."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(*batch, m, m, generator=g, dtype=torch.float64)
    B = torch.randn(*batch, n, n, generator=g, dtype=torch.float64)
    return MNIW(M=torch.randn(*batch, n, m, generator=g, dtype=torch.float64),
                V=A @ A.transpose(-1, -2) / m + 0.5 * torch.eye(m, dtype=torch.float64),
                S=B @ B.transpose(-1, -2) + n * torch.eye(n, dtype=torch.float64),
                nu=torch.full(batch, n + 6.0, dtype=torch.float64))


def _samples(dist: MNIW, count: int, seed: int):
    """Return ``count`` samples (F, Sigma) of a batch-free MNIW, stacked.

    Sigma^-1 ~ Wishart(S^-1, nu) (torch.distributions), then F = M + chol(Sigma) Z chol(V)^T
    with Z standard normal.
    """
    torch.manual_seed(seed)
    wishart = torch.distributions.Wishart(df=dist.nu, covariance_matrix=torch.linalg.inv(dist.S))
    Sigma = torch.linalg.inv(wishart.sample((count,)))
    Z = torch.randn(count, dist.rows, dist.cols, dtype=torch.float64)
    F = dist.M + torch.linalg.cholesky(Sigma) @ Z @ torch.linalg.cholesky(dist.V).T
    return F, Sigma


def test_expected_statistics_match_monte_carlo():
    dist = _random_mniw(0, batch=())
    F, Sigma = _samples(dist, 200_000, seed=1)
    Sigma_inv = torch.linalg.inv(Sigma)
    stats = dist.expected_stats()
    torch.testing.assert_close(Sigma_inv.mean(0), stats.E_Sinv, rtol=0.02, atol=0.01)
    torch.testing.assert_close((Sigma_inv @ F).mean(0), stats.E_Sinv_F, rtol=0.03, atol=0.02)
    torch.testing.assert_close((F.transpose(-1, -2) @ Sigma_inv @ F).mean(0),
                               stats.E_Ft_Sinv_F, rtol=0.03, atol=0.03)
    torch.testing.assert_close(torch.logdet(Sigma_inv).mean(), stats.E_logdet_Sinv,
                               rtol=0.01, atol=0.01)
    M, E_Sigma = dist.mean_dynamics()
    torch.testing.assert_close(F.mean(0), M, rtol=0.0, atol=0.02)
    torch.testing.assert_close(Sigma.mean(0), E_Sigma, rtol=0.03, atol=0.03)


def test_natural_parameters_round_trip():
    dist = _random_mniw(2)
    back = MNIW.from_natural(dist.to_natural())
    for name in ('M', 'V', 'S', 'nu'):
        torch.testing.assert_close(getattr(back, name), getattr(dist, name))


def test_kl_is_zero_for_itself_positive_otherwise_and_matches_monte_carlo():
    q, p = _random_mniw(3, batch=()), _random_mniw(4, batch=())
    assert abs(float(q.kl(q))) < 1e-9
    kl = float(q.kl(p))
    assert kl > 0
    F, Sigma = _samples(q, 100_000, seed=5)
    batch = (F.shape[0],)
    qq = MNIW(q.M.expand(*batch, *q.M.shape), q.V.expand(*batch, *q.V.shape),
              q.S.expand(*batch, *q.S.shape), q.nu.expand(batch))
    pp = MNIW(p.M.expand(*batch, *p.M.shape), p.V.expand(*batch, *p.V.shape),
              p.S.expand(*batch, *p.S.shape), p.nu.expand(batch))
    estimate = (qq.log_prob(F, Sigma) - pp.log_prob(F, Sigma)).mean()
    assert float(estimate) == pytest.approx(kl, rel=0.03)


def test_log_prob_integrates_to_one_in_one_dimension():
    # n = m = 1: integrate p(F, sigma2) on a grid.
    dist = MNIW(M=torch.tensor([[0.3]]), V=torch.tensor([[0.5]]), S=torch.tensor([[1.5]]),
                nu=torch.tensor(4.0))
    f = torch.linspace(-8, 8, 801, dtype=torch.float64)
    s = torch.linspace(1e-3, 30, 3000, dtype=torch.float64)
    Fg, Sg = torch.meshgrid(f, s, indexing='ij')
    grid = MNIW(dist.M.expand(*Fg.shape, 1, 1), dist.V.expand(*Fg.shape, 1, 1),
                dist.S.expand(*Fg.shape, 1, 1), dist.nu.expand(Fg.shape))
    density = grid.log_prob(Fg[..., None, None], Sg[..., None, None]).exp()
    total = torch.trapezoid(torch.trapezoid(density, s, dim=1), f)
    assert float(total) == pytest.approx(1.0, abs=2e-3)


def _data(seed: int, count: int, steps: int = 3):
    """Return transitions of a known system: true F (steps, 2, 3), Sigma and stats."""
    g = torch.Generator().manual_seed(seed)
    F = 0.5 * torch.randn(steps, 2, 3, generator=g, dtype=torch.float64)
    Sigma = torch.diag(torch.tensor([0.04, 0.09], dtype=torch.float64))
    x = torch.randn(steps, count, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(steps, count, 2, generator=g, dtype=torch.float64) @ Sigma.sqrt()
    y = torch.einsum('tij,tnj->tni', F, x) + noise
    stats = LDSSuffStats(xx=torch.einsum('tni,tnj->tij', x, x),
                         yx=torch.einsum('tni,tnj->tij', y, x),
                         yy=torch.einsum('tni,tnj->tij', y, y),
                         count=torch.full((steps,), float(count), dtype=torch.float64))
    return F, Sigma, stats


def test_posterior_recovers_known_dynamics():
    F, Sigma, stats = _data(6, count=20_000)
    prior = MNIW.prior(2, 1, horizon=4)
    posterior = prior.posterior(stats)
    M, E_Sigma = posterior.mean_dynamics()
    torch.testing.assert_close(M, F, rtol=0.0, atol=0.01)
    torch.testing.assert_close(E_Sigma, Sigma.expand(3, 2, 2), rtol=0.0, atol=0.005)


def test_natural_step_of_one_is_the_conjugate_posterior_and_smaller_steps_interpolate():
    _, _, stats = _data(7, count=50)
    prior = MNIW.prior(2, 1, horizon=4)
    q = _random_mniw(8, n=2, m=3, batch=(3,))
    full = mniw_natural_step(q, prior, stats, scale=4.0, step=1.0)
    exact = prior.posterior(stats.scaled(4.0))
    for name in ('M', 'V', 'S', 'nu'):
        torch.testing.assert_close(getattr(full, name), getattr(exact, name))
    half = mniw_natural_step(q, prior, stats, scale=4.0, step=0.5)
    expected = 0.5 * q.to_natural().eta3 + 0.5 * exact.to_natural().eta3
    torch.testing.assert_close(half.to_natural().eta3, expected)
    with pytest.raises(ValueError, match='step must be in'):
        mniw_natural_step(q, prior, stats, scale=1.0, step=0.0)


def test_prior_has_the_authors_settings():
    prior = MNIW.prior(3, 2, horizon=5, scale=2.0)
    assert prior.M.shape == (4, 3, 5) and prior.nu.shape == (4,)
    M, E_Sigma = prior.mean_dynamics()
    torch.testing.assert_close(E_Sigma, 2.0 * torch.eye(3, dtype=torch.float64).expand(4, 3, 3))
    torch.testing.assert_close(M[0, :, :3], torch.eye(3, dtype=torch.float64))
    assert float(prior.nu[0]) == 5.0 and math.isclose(float(prior.V[0, 4, 4]), 1.0)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r'MNIW.V: expected shape \(3, 3\)'):
        MNIW(torch.zeros(2, 3), torch.eye(2), torch.eye(2), torch.tensor(5.0))
    with pytest.raises(ValueError, match='MNIW.nu'):
        MNIW(torch.zeros(2, 3), torch.eye(3), torch.eye(2), torch.tensor(0.5))
