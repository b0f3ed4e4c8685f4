"""Slow, obviously-correct NumPy references for the kernels (float64, no caching tricks)."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from scipy.stats import poisson

from streamlstm.engine.params import LSTM, views


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def cell_step(cell, theta, x, h, c, D, H):
    """One step on [h, x] with the classical equations; NaN inputs read as 0."""
    W, b, _, _ = (np.asarray(v, dtype=np.float64) for v in views(theta, cell, D, H))
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    if cell == LSTM:
        pre = np.concatenate([h, x]) @ W + b
        f, i, g, o = sigmoid(pre[:H]), sigmoid(pre[H:2 * H]), np.tanh(pre[2 * H:3 * H]), sigmoid(pre[3 * H:])
        c_new = f * c + i * g
        return o * np.tanh(c_new), c_new
    Wh, Wx = W[:H], W[H:]
    z = sigmoid(h @ Wh[:, :H] + x @ Wx[:, :H] + b[:H])
    r = sigmoid(h @ Wh[:, H:2 * H] + x @ Wx[:, H:2 * H] + b[H:2 * H])
    n = np.tanh((r * h) @ Wh[:, 2 * H:] + x @ Wx[:, 2 * H:] + b[2 * H:])
    return (1 - z) * n + z * h, c


def head(theta, h, cell, D, H):
    _, _, Wy, by = views(theta, cell, D, H)
    return h @ np.asarray(Wy, np.float64) + by


def window_loss(theta, cell, D, H, h0, c0, xs, targets, weights, n_loss, loss="mse", delta=1.0):
    """Loss the kernels backpropagate: over the last n_loss targets, weighted mean over
    observed features of 0.5*r^2 (MSE) or Huber(r), r = head(h_{t+1}) - target_t."""
    h, c = np.array(h0, np.float64), np.array(c0, np.float64)
    L = len(xs)
    total = 0.0
    for t in range(L):
        h, c = cell_step(cell, theta, xs[t], h, c, D, H)
        if t >= L - n_loss:
            r = head(theta, h, cell, D, H) - targets[t]
            r = r[~np.isnan(targets[t])]
            if loss == "mse":
                per = 0.5 * r**2
            else:
                a = np.abs(r)
                per = np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))
            if len(r):
                total += weights[t] * per.mean()
    return total


def numerical_gradient(f, theta, eps=1e-6):
    g = np.zeros_like(theta, dtype=np.float64)
    for p in range(theta.size):
        old = theta[p]
        theta[p] = old + eps
        up = f(theta)
        theta[p] = old - eps
        down = f(theta)
        theta[p] = old
        g[p] = (up - down) / (2 * eps)
    return g


# ------------------------------------------------------------------------- scoring


def neg_log10_tail(z):
    """-log10 P(Z >= z), from the complementary error function (asymptotic beyond 30)."""
    if z < 30.0:
        return -math.log10(max(0.5 * math.erfc(z / math.sqrt(2.0)), 1e-300))
    return (0.5 * z * z + math.log(z * math.sqrt(2.0 * math.pi))) / math.log(10.0)


def _rms(a):
    return math.sqrt(float(np.mean(np.square(a)))) if len(a) else math.nan


def _f32(v):
    return float(np.float32(v))


def _narrow(x, p=8):
    """The nearest float of p significant bits (ties to even) with float32's exponent range,
    0 below 2^-126: bfloat16 for p = 8, float24 for p = 16."""
    if math.isnan(x) or math.isinf(x):
        return x
    if abs(x) < 2.0 ** -126:
        return 0.0
    m, e = math.frexp(abs(x))
    v = math.copysign(math.ldexp(round(m * 2 ** p), e - p), x)  # round(): ties to even
    return v if abs(v) < 2.0 ** 128 else math.copysign(math.inf, x)


def _narrow_ewma(old, x, p):
    """An EWMA's new value x of p significant bits from `old`: the nearest, or one unit
    from old towards x when the nearest is old itself (so that no step is lost)."""
    new = _narrow(x, p)
    if new != old or old == 0.0 or x == old:
        return new
    m, e = math.frexp(abs(old))
    up = math.ldexp(1.0, e - p)  # the unit above |old|; below a power of two it is half that
    return math.copysign(abs(old) + up if abs(x) > abs(old) else abs(old) - (up / 2 if m == 0.5 else up), old)


def _same(v):
    return v


def point_surprise(x, stats, stats32, tails, hy, gaps=(), cycle=None, tick=0, corr=None, corr_tails=None):
    """scoring.point_surprise of event x (D,) from a stream's stored state before it (its
    own cycle's table `cycle` and clock `tick` where it has one; its `corr` (2, D, D) and
    `corr_tails` (D, TAIL_LEVELS) where the news-given-the-others test covers it): each
    judged feature's innovation under its baseline; where its own cycle's residual tail
    (learnt past 20 residuals) rests on a period of them, its residual against that
    cycle; and where its innovations' second moments rest on more than 20 of them and
    another feature is judged, its innovation's residual given the other judged features':
    the regression residual (P u)_d / sqrt(P_dd), u the judged features' innovations
    clamped to +-6, P the inverse of their block of I + the stored moments + 0.01 I
    (numpy's; the precision of their marginal); the probability of each as large
    by its own tail frequencies, extrapolated past the last level that rests on two
    exceedances or more; the smallest over all these tests times their number; none for
    the features in `gaps`, which the previous event lacked. The regime's own pieces
    (which features it judges, the z under the nearest mode, the previous z, persistence,
    the calibrated tail) and the cycle's residual (tests/test_cycle.py) are taken from
    scoring as givens, as tests/test_scoring.py's regime tests take them."""
    from streamlstm.engine import scoring
    from streamlstm.engine.layout import CORR_COV, TAILS_CYCLE, TAILS_NEWS

    col = hy.stats
    ps = []
    news = innovations(x, stats, stats32, hy, gaps)
    for d in range(len(x)):
        if math.isnan(news[d]):
            continue
        ps.append(_point_p(abs(news[d]), stats[col.base_count + d], tails[d, TAILS_NEWS], hy))
        if cycle is not None and stats32[col.cycle_count + d] >= 20 + max(stats32[col.cycle_period + d], 1):
            sd = scoring.scaler_std(stats32[col.var + d], stats[col.mean + d], stats[col.res + d])
            r = scoring.cycle_residual(x[d] - stats[col.mean + d], d, cycle, tick, stats32, sd, hy)
            if not math.isnan(r):
                ps.append(_point_p(abs(r), stats32[col.cycle_count + d], tails[d, TAILS_CYCLE], hy))
    counts = stats[col.corr_count:col.corr_count + len(x)] if corr is not None and corr.shape[-1] else np.zeros(0)
    judged = np.flatnonzero(~np.isnan(news))
    if len(counts) and len(judged) >= 2:
        second_moments = np.eye(len(x)) * 1.01 + corr[CORR_COV].astype(np.float64)
        P = np.linalg.inv(second_moments[np.ix_(judged, judged)])  # the judged features' alone
        residual = P @ np.clip(news[judged], -6.0, 6.0) / np.sqrt(np.diag(P))
        for k, d in enumerate(judged):
            if counts[d] > 20:
                ps.append(_point_p(abs(residual[k]), counts[d], corr_tails[d], hy))
    return -math.log10(max(min(min(ps) * len(ps), 1.0), 1e-300)) if ps else 0.0


def innovations(x, stats, stats32, hy, gaps=()):
    """Each feature of event x (D,)'s signed innovation (z - r z_prev) / sqrt(1 - r^2)
    under its nearest normal mode, from a stream's stored state before it, r its
    persistence rho to the power k / interval, k the events since its last observation
    (this one included), interval its mean interval between observations (at least 1);
    NaN for a feature the regime does not judge (missing, its baseline of 20 observations
    or fewer, context) or one in `gaps`. The regime's pieces are taken from scoring as
    givens."""
    from streamlstm.engine import scoring

    col = hy.stats
    out = np.full(len(x), np.nan)
    for d in range(len(x)):
        if math.isnan(x[d]) or stats[col.base_count + d] <= 20 or not scoring.judged(d, stats, hy) or d in gaps:
            continue
        z, mode, _ = scoring.nearest_mode(x[d], d, stats, stats32, hy)
        k = float(stats32[col.absent + d]) + 1.0
        rho = scoring.persistence(d, stats32, hy)[0] ** (k / max(float(stats32[col.interval + d]), 1.0))
        out[d] = (z - rho * scoring.previous_z(z, mode, rho, d, stats, stats32, hy)) / math.sqrt(1.0 - rho * rho)
    return out


def _point_p(u, m, freqs, hy):
    """P(U >= u) by a feature's tail frequencies freqs, learnt from m - 20 observations:
    calibrated up to the last level that rests on two exceedances or more, a Weibull
    tail through it and the level below beyond it, no claim beyond a trusted top level,
    the calibrated tail floored at 1 / (n + 2) where no level is trusted."""
    from streamlstm.engine import scoring
    from streamlstm.engine.compact import UF16, narrow_value
    from streamlstm.engine.layout import TAIL_LEVELS

    floor = 1.0 / (min(m - 20, 1.0 / hy.scaler_alpha) + 2.0)
    f = [1.0] + [narrow_value(freqs[k], UF16) for k in range(TAIL_LEVELS)]
    top = 0
    while top < TAIL_LEVELS and f[top + 1] >= 2.0 * floor:
        top += 1
    if top == 0:
        return max(scoring.calibrated_tail(u, m, freqs, hy), floor)
    if u <= top:
        return scoring.calibrated_tail(u, m, freqs, hy)
    if top == TAIL_LEVELS or f[top] >= f[top - 1]:
        return f[top]
    # Weibull through the two top trusted levels: -ln P = -ln f_top (u / top)^shape, shape <= 2.
    if f[top - 1] >= 1.0:  # no bend to read: the exponential through both levels
        return f[top] ** (u - top + 1)
    shape = min(math.log(math.log(f[top]) / math.log(f[top - 1])) / math.log(top / (top - 1)), 2.0)
    return math.exp(math.log(f[top]) * (u / top) ** shape)


def is_normal(stats32, hy):
    """Whether the stream's regime is normal before its next event (P(abnormal) < 0.5)."""
    return stats32[hy.stats.regime] + math.log(hy.regime_enter / (1.0 - hy.regime_enter)) < 0.0


def score_stream(errors, X, T, settings, exact=False, point=None, normal=None):
    """The continuous scores, alert scores and flags the scoring of streamlstm gives one
    stream, from its prediction errors (N,), events X (N, D) and timestamps T (N,) (NaN =
    unknown): a plain re-implementation of scoring.py's description, one event at a time.
    `point` (N,): each event's point_surprise (above; 0 where not given), which the alerts
    ask where `normal` (N,) bool (is_normal before the event) and the score always.
    The channel inputs are kept in bfloat16, the seasonal bins' means and variances in
    float24, and the scaler's variance, the step unit, the
    channels' statistics, the penalty and the quantile in float32, as the detector stores
    them; `exact` keeps everything in float64 instead."""
    f32, narrow, narrow_ewma = (_same, _same, lambda old, x, p: x) if exact else (_f32, _narrow, _narrow_ewma)
    s = settings
    N, D = X.shape
    W, B = s["short_window"], s["seasonal_bins"]
    alpha = lambda hl: 1.0 - 0.5 ** (1.0 / hl)  # noqa: E731
    a_val, a_long, a_seas = alpha(s["scaler_halflife"]), alpha(s["long_halflife"]), alpha(50.0)
    decay = 0.5 ** (1.0 / s["penalty_halflife"])
    mean, var, nobs = np.zeros(D), np.zeros(D), np.zeros(D)
    prev, lo, hi = np.zeros(D), np.zeros(D), np.zeros(D)
    step_unit = np.zeros(D)  # mean absolute step |v - prev|
    records = np.zeros((D, 2, 2))  # new highs / lows in the previous / current block of values
    B_rec = 2 ** min(round(math.log2(s["scaler_halflife"])), 30)
    block = lambda n: (n // B_rec) * B_rec if n >= B_rec else 2 ** math.floor(math.log2(n))  # noqa: E731

    def trend_foretold(d, v):
        """A record that the feature's recent run of records, each by a typical step, foretold."""
        n = nobs[d]
        start = block(n) / 2 if block(n) <= B_rec else block(n) - B_rec
        lam = math.log((n + 0.5) / (start - 0.5)) if start >= 2 else math.inf
        k = records[d, 0 if v > hi[d] else 1].sum()
        if k <= lam or -poisson.logsf(k - 1, lam) / math.log(10) < 5.0:
            return False
        unit = max(step_unit[d], res[d] / 3.0, 1e-6 * abs(mean[d]) + 1e-9)
        return d in obs and neg_log10_tail(abs(v - prev[d]) / unit) < 5.0
    res = np.zeros(D)  # resolution: the smallest non-zero |v - prev| (0: none yet)
    bins = np.zeros((D, B, 3))  # mean, variance, visits (saturating at 255)
    history = []  # channel inputs of every earlier event with a value (one with none leaves no trace)
    fed = set()  # the features the previous event gave the model (observed, judged and scaled)
    chan = np.zeros((4, 3))  # long-term mean, variance, updates of each channel
    penalty, quiet = 0.0, 0
    q = 0.0  # running CALIB_P quantile of the channel surprise (self-calibration)
    day_old = 0.0  # when the stream is a day old (its first timestamp + 1 day, float32; 0: none yet)
    scores, alert_scores, flags = np.zeros(N), np.zeros(N), np.zeros(N, dtype=bool)
    for i in range(N):
        x, t = X[i], T[i]
        # floored at the rounding of a value on its grid (res / sqrt(12)) and at the level's precision
        sd = np.maximum(np.maximum(np.sqrt(np.maximum(var, 0.0)), res / math.sqrt(12.0)), 1e-6 * np.abs(mean) + 1e-9)
        n_seen = len(history)
        seen = [d for d in range(D) if not math.isnan(x[d]) and nobs[d] >= 1]
        measured = hi - lo > 1.5 * res  # more than two values a step apart; the others are context
        obs = [d for d in seen if measured[d] or not measured.any()]
        fed_now = {d for d in obs if nobs[d] >= 2}  # the model's input: scaled once seen twice
        b_learn = None if B == 0 or math.isnan(t) else int((t % 86400.0) / 86400.0 * B)
        b = b_learn if b_learn is not None and day_old != 0.0 and t >= day_old else None  # once a day old
        seas_d = [d for d in obs if b is not None and bins[d, b, 2] >= 3]
        inputs = [errors[i],
                  _rms([(x[d] - mean[d]) / sd[d] for d in obs]),
                  _rms([(x[d] - prev[d]) / max(step_unit[d], res[d] / 3.0, 1e-6 * abs(mean[d]) + 1e-9)
                        for d in obs if d in fed]),
                  _rms([(x[d] - mean[d] - bins[d, b, 0]) / max(math.sqrt(max(bins[d, b, 1], 0.0)), 0.1 * sd[d],
                                                               res[d] / math.sqrt(12.0))
                        for d in seas_d])]
        # range novelty: the farthest outside its tolerance, widened for m features that could set a record
        m = len(obs)
        tolerance = [s["range_tolerance"] + (math.log(m) / (2 * math.log(max(nobs[d], 2.0))) if m > 1 else 0.0)
                     for d in range(D)]
        # ...and, for a judged feature, beyond `range_steps` typical steps of the range
        reach = [s["range_steps"] * max(step_unit[d], res[d] / 3.0, 1e-6 * abs(mean[d]) + 1e-9) if d in obs else 0.0
                 for d in range(D)]
        outside = max([o for o, d in ((max(x[d] - hi[d], lo[d] - x[d]) / (hi[d] - lo[d]), d) for d in seen
                                      if hi[d] > lo[d]) if o > tolerance[d] and o * (hi[d] - lo[d]) > reach[d]
                       and not trend_foretold(d, x[d])] + [0.0])
        means, thin = [], []  # each window's mean, and its slots per input
        for c in range(4):
            window = [inputs[c]] + [h[c] for h in history[max(0, n_seen - W + 1):]]
            slots = len(window)
            window = [v for v in window if not math.isnan(v)]
            means.append(math.nan if math.isnan(inputs[c]) else sum(window) / len(window))
            thin.append(slots / max(len(window), 1))

        def surprise(c):
            mu, v, n = chan[c]
            if math.isnan(means[c]) or n < max(s["warmup"] - s["warmup"] // 2, 2):
                return 0.0
            sd = max(math.sqrt(max(v * thin[c], 0.0)), 1e-3 * abs(mu) + 1e-12)
            return neg_log10_tail((means[c] - mu) / sd)

        L = Ls = 0.0
        if n_seen >= s["warmup"]:
            Lp = 0.0 if point is None else point[i]
            Lc = max((surprise(0) + surprise(1) + surprise(2)) / 3.0, surprise(3), s["error_weight"] * surprise(0),
                     Lp if normal is None or normal[i] else 0.0)
            damp = (lambda v: v * min(1.0, 5.0 / q)) if q > 0 else (lambda v: v)  # noqa: E731
            L = max(damp(Lc), s["range_novelty"] * (1.0 + outside) if outside > 0.0 else 0.0)
            Ls = max(L, damp(Lp))
            q = f32(min(q + 0.2 * ((1.0 if Lc > q else 0.0) - 0.005), 5.0 / 0.75))
        Le = max(L - penalty, 0.0)
        alert = 0.0 if quiet > 0 else Le / (Le + 5.0)
        flag = alert >= s["threshold"]
        if quiet > 0:
            quiet -= 1
        elif flag:
            quiet = s["alert_cooldown"]
            penalty += s["alert_penalty"]
        penalty = f32(penalty * decay)
        scores[i], alert_scores[i], flags[i] = Ls / (Ls + 5.0), alert, flag
        # learning: channel statistics, then the value statistics
        for c in range(4):
            if n_seen >= s["warmup"] // 2 and not math.isnan(means[c]):
                chan[c, 2] += 1
                a = max(1.0 / chan[c, 2], a_long)
                d = means[c] - chan[c, 0]
                chan[c, 0] = f32(chan[c, 0] + a * d)
                chan[c, 1] = f32((1 - a) * (chan[c, 1] + a * d * d))
        if not np.isnan(x).all():
            history.append([narrow(v) for v in inputs])
        fed = fed_now
        if day_old == 0.0 and not math.isnan(t):
            day_old = float(np.float32(t + 86400.0))
        if b_learn is not None:  # a bin's half-life: 50 events, or 4 days of its events at the mean spacing
            elapsed = t - day_old + 86400.0
            hl = max(50.0, 4.0 * 86400.0 / B * i / elapsed) if i > 0 and elapsed > 0 else 50.0
            a_bin = a_seas if hl == 50.0 else alpha(hl)
        for d in range(D):
            v = x[d]
            if math.isnan(v):
                continue
            if nobs[d] >= 2 and hi[d] > lo[d]:  # a wild value is learnt as one width beyond the range
                v = min(max(v, 2 * lo[d] - hi[d]), 2 * hi[d] - lo[d])
            dev = v - mean[d]  # the seasonal profile learns deviations from the mean
            nobs[d] += 1
            a = max(1.0 / nobs[d], a_val)
            delta = v - mean[d]
            mean[d] += a * delta
            var[d] = f32((1 - a) * (var[d] + a * delta * delta))
            if nobs[d] >= 2:
                step_unit[d] = f32(step_unit[d] + max(1.0 / (nobs[d] - 1), a_val) * (abs(v - prev[d]) - step_unit[d]))
                if v != prev[d] and (res[d] == 0 or abs(v - prev[d]) < res[d]):
                    res[d] = abs(v - prev[d])
            if block(nobs[d]) == nobs[d]:
                records[d, :, 0], records[d, :, 1] = records[d, :, 1], 0
            if nobs[d] > 1:
                records[d, 0, 1] += v > hi[d]
                records[d, 1, 1] += v < lo[d]
            lo[d], hi[d] = (v, v) if nobs[d] == 1 else (min(lo[d], v), max(hi[d], v))
            prev[d] = v
            if b_learn is not None and nobs[d] > 1:  # the first value starts the mean: no deviation
                b = b_learn
                bm, bv, bc = bins[d, b]
                a = a_bin if bc + 1 > 255 else max(1.0 / (bc + 1), a_bin)
                bc = min(bc + 1, 255)
                delta = dev - bm
                bins[d, b] = narrow_ewma(bm, bm + a * delta, 16), narrow_ewma(bv, (1 - a) * (bv + a * delta * delta), 16), bc
    return scores, alert_scores, flags


# ------------------------------------------------------------------------ stream table


class StreamTable:
    """engine/state.StreamTable on an OrderedDict (id -> slot, least recently seen first),
    as it was written before the linked list of slots."""

    def __init__(self, max_streams):
        self.max_streams, self.slots, self.free, self.evicted = max_streams, OrderedDict(), [], 0

    def items(self):
        return list(self.slots.items())

    def touch(self, sid):
        self.slots.move_to_end(sid)

    def remove(self, sid):
        self.free.append(self.slots.pop(sid))

    def pack(self, capacity):
        movers = [(sid, slot) for sid, slot in self.slots.items() if slot >= capacity]
        free = sorted((slot for slot in self.free if slot < capacity), reverse=True)
        fresh = min(len(self.slots) + len(self.free), capacity)
        moves = []
        for sid, src in movers:
            if free:
                dst = free.pop()
            else:
                dst, fresh = fresh, fresh + 1
            self.slots[sid] = dst
            moves.append((src, dst))
        self.free = free
        return moves

    def assign(self, stream_ids):
        slots, new, used_now = [], [], set()
        for sid in stream_ids:
            slot = self.slots.get(sid)
            if slot is not None:
                self.slots.move_to_end(sid)
            elif len(self.slots) < self.max_streams:
                slot = self.free.pop() if self.free else len(self.slots)
                self.slots[sid] = slot
                new.append((slot, sid))
            else:
                victim = next(iter(self.slots))
                if self.slots[victim] in used_now:
                    break
                slot = self.slots.pop(victim)
                self.evicted += 1
                self.slots[sid] = slot
                new.append((slot, sid))
            used_now.add(slot)
            slots.append(slot)
        return slots, new
