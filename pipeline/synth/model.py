"""The latent-trait model behind synthetic answers, and the planted effects.

Each respondent has a general satisfaction ``g ~ N(mu, 1)`` where ``mu`` is the
sum of planted offsets (faculty, teacher). Each dimension has its own factor
``f_d = a*g + sqrt(1-a^2)*e_d`` (unit variance), and each item a continuous
score ``y* = l_i*f_d + b_i + shift + eps`` (``eps ~ N(0, sigma^2)``) cut into
1..5 at :data:`CUTS`. Reverse-coded items are written as ``6 - x``.

Because ``y*`` is normal with mean ``l_i*a*mu + b_i + shift`` and variance
``l_i^2 + sigma^2``, the expected share of positive answers (>= 4) is known in
closed form; planted changes are solved for an exact change in that share.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

#: Cut points between answers 1|2, 2|3, 3|4, 4|5 on the continuous scale.
CUTS = np.array([-1.45, -0.55, 0.30, 1.35])
#: Loading of a dimension factor on the general factor; short questionnaires get a
#: stronger general factor so that their alpha lands in the same realistic range.
DIMENSION_LOADING = 0.55
DIMENSION_LOADING_SHORT = 0.78
SHORT_QUESTIONNAIRE = 20


def dimension_loading(n_items: int) -> float:
    return DIMENSION_LOADING if n_items >= SHORT_QUESTIONNAIRE else DIMENSION_LOADING_SHORT


#: Item noise standard deviation; items of a long single dimension (a teaching evaluation's
#: dozen items) get more, so that alpha stays realistic.
ITEM_NOISE = 0.85
ITEM_NOISE_LONG_DIMENSION = 1.25
LONG_DIMENSION = 8


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, stable across processes and platforms."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class ItemParams:
    loading: float
    intercept: float
    reverse: bool
    general: float = DIMENSION_LOADING  # the dimension factor's loading on g
    noise: float = ITEM_NOISE

    @property
    def sd(self) -> float:
        return float(np.sqrt(self.loading**2 + self.noise**2))

    def mean(self, mu: float, shift: float = 0.0) -> float:
        return self.loading * self.general * mu + self.intercept + shift

    def pct_positive(self, mu: float, shift: float = 0.0) -> float:
        """Expected share of answers >= 4 as written (reverse items flipped)."""
        m = self.mean(mu, shift)
        if self.reverse:  # written 6-x >= 4  <=>  x <= 2  <=>  y* <= CUTS[1]
            return float(ndtr((CUTS[1] - m) / self.sd))
        return float(1.0 - ndtr((CUTS[2] - m) / self.sd))

    def shift_for(self, mu: float, target: float) -> float:
        """The latent shift that moves the expected % positive to ``target``."""
        if self.reverse:
            m_target = CUTS[1] - self.sd * ndtri(target)
        else:
            m_target = CUTS[2] - self.sd * ndtri(1.0 - target)
        return float(m_target - self.mean(mu))


def item_params(
    seed: int, code: str, reverse: bool, general: float, dimension_size: int = 1
) -> ItemParams:
    """Parameters of one item; they depend on the code only, so versions agree."""
    rng = np.random.default_rng(stable_seed(seed, "item", code))
    loading = rng.uniform(0.85, 1.15)
    intercept = rng.uniform(-0.15, 0.55)
    # y* is satisfaction for every item; a reverse-coded item is written as 6 - x, so the
    # same positive intercept makes most respondents disagree with the unfavourable wording
    noise = ITEM_NOISE_LONG_DIMENSION if dimension_size >= LONG_DIMENSION else ITEM_NOISE
    return ItemParams(float(loading), float(intercept), reverse, general, noise)


def answers(
    rng: np.random.Generator,
    g: np.ndarray,
    dims: list[str],
    params: list[ItemParams],
    item_dims: list[str],
    shifts: np.ndarray,
) -> np.ndarray:
    """Draw 1..5 answers, shape (n, items), for general factors ``g``.

    ``shifts`` has shape (n, items): each respondent's planted latent shift per item.
    """
    n = g.shape[0]
    a = params[0].general
    factors = {d: a * g + np.sqrt(1 - a * a) * rng.standard_normal(n) for d in dims}
    out = np.empty((n, len(params)), dtype=np.int8)
    noise = rng.standard_normal((n, len(params))) * np.array([p.noise for p in params])
    for j, (p, d) in enumerate(zip(params, item_dims, strict=True)):
        ystar = p.loading * factors[d] + p.intercept + shifts[:, j] + noise[:, j]
        x = 1 + np.searchsorted(CUTS, ystar).astype(np.int8)
        out[:, j] = 6 - x if p.reverse else x
    return out
