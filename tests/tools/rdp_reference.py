#!/usr/bin/env python3
"""Exact high-precision reference values for the storefl RDP accountant (tests/unit/test_accountant.c).

Computes the SAME bound as shared/src/accountant.c -- RDP of the sampled Gaussian mechanism
(Mironov, Talwar, Zhang 2019), integer orders by the binomial expansion, fractional orders by the
two-series erfc formula, composed over T rounds and converted to (eps, delta) with the conversion of
Balle et al. 2020 (default) or the classic one, minimised over the same default orders -- but with
python3-mpmath at 60 significant digits: the integer series is summed exactly, the fractional
series to its limit (head summed directly, alternating tail by mpmath.nsum with Cohen-Villegas-Zagier
acceleration, checked against a direct summation). Output: tests/data/rdp_vectors.txt.

Usage: python3 tests/tools/rdp_reference.py > tests/data/rdp_vectors.txt
"""
import mpmath as mp

mp.mp.dps = 60


def default_orders():
    o = [mp.mpf(1) + mp.mpf(x) / 10 for x in range(1, 100)]
    o += [mp.mpf(a) for a in range(11, 65)]
    o += [mp.mpf(a) for a in (80, 96, 128, 192, 256, 512, 1024)]
    return o


def log_a_int(q, s, a):
    a = int(a)
    tot = mp.mpf(0)
    for k in range(a + 1):
        tot += mp.binomial(a, k) * (1 - q) ** (a - k) * q ** k * mp.exp(mp.mpf(k * k - k) / (2 * s * s))
    return mp.log(tot)


def log_a_frac(q, s, a):
    z0 = s * s * mp.log(1 / q - 1) + mp.mpf(1) / 2

    def term(i):
        i = mp.mpf(i)
        j = a - i
        c = mp.binomial(a, i)
        t0 = c * q ** i * (1 - q) ** j * mp.exp((i * i - i) / (2 * s * s)) * mp.erfc((i - z0) / (mp.sqrt(2) * s)) / 2
        t1 = c * q ** j * (1 - q) ** i * mp.exp((j * j - j) / (2 * s * s)) * mp.erfc((z0 - j) / (mp.sqrt(2) * s)) / 2
        return t0 + t1

    head = int(mp.ceil(a)) + 2
    start = max(head, int(mp.ceil(z0 + 10 * s)) + 2)
    tot = mp.fsum(term(i) for i in range(start))
    # From here on the terms alternate in sign (binomial(a, i) for i > a) and decay smoothly.
    tail = mp.nsum(term, [start, mp.inf], method='alternating')
    return mp.log(tot + tail)


def rdp(q, s, a):
    if q == 1:
        return a / (2 * s * s)
    la = log_a_int(q, s, a) if a == mp.floor(a) else log_a_frac(q, s, a)
    return la / (a - 1)


def eps(orders, rdps, delta, classic):
    best = mp.inf
    for a, r in zip(orders, rdps):
        if classic:
            e = r + mp.log(1 / delta) / (a - 1)
        else:
            e = r + mp.log((a - 1) / a) - (mp.log(delta) + mp.log(a)) / (a - 1)
        best = min(best, e)
    return max(best, mp.mpf(0))


def main():
    # Self-check of the tail acceleration against plain summation where the tail is short.
    q, s, a = mp.mpf('0.3'), mp.mpf('0.6'), mp.mpf('2.5')
    z0 = s * s * mp.log(1 / q - 1) + mp.mpf(1) / 2
    direct = mp.log(mp.nsum(lambda i: 0, [0, 0]) + sum(
        (lambda i: mp.binomial(a, i) * q ** i * (1 - q) ** (a - i) * mp.exp((i * i - i) / (2 * s * s)) *
         mp.erfc((i - z0) / (mp.sqrt(2) * s)) / 2 + mp.binomial(a, i) * q ** (a - i) * (1 - q) ** i *
         mp.exp(((a - i) ** 2 - (a - i)) / (2 * s * s)) * mp.erfc((z0 - (a - i)) / (mp.sqrt(2) * s)) / 2)(mp.mpf(i))
        for i in range(200000)))
    assert abs(direct - log_a_frac(q, s, a)) < mp.mpf('1e-12'), (direct, log_a_frac(q, s, a))

    print("# storefl RDP reference vectors, made by tests/tools/rdp_reference.py (mpmath, 60 digits).")
    print("# rdp q sigma alpha value            -- one round at one order")
    print("# eps q sigma rounds delta classic value  -- minimised over the default orders")
    qs = ['1e-6', '1e-4', '0.01', '0.1', '0.3', '0.6', '1']
    sigmas = ['0.5', '0.8', '1.1', '2', '5']
    alphas = ['1.1', '1.5', '2', '2.5', '3.7', '8', '10.9', '32', '64', '256', '1024']
    for qq in qs:
        for ss in sigmas:
            for aa in alphas:
                q, s, a = mp.mpf(qq), mp.mpf(ss), mp.mpf(aa)
                if a > 64 and q > 0.01 and s < 1:
                    continue  # astronomically large, not a useful regime
                print("rdp %s %s %s %s" % (qq, ss, aa, mp.nstr(rdp(q, s, a), 20)))
    orders = default_orders()
    cases = [('1e-6', '0.8', 100000, '1e-5'), ('1e-4', '1.1', 10000, '1e-6'), ('0.01', '1.1', 1000, '1e-5'),
             ('0.01', '4', 10000, '1e-5'), ('0.004266666666666667', '1.12', 14040, '1e-5'),
             ('0.1', '2', 100, '1e-8'), ('0.3', '0.9', 50, '1e-5'), ('1', '5', 10, '1e-5'),
             ('1', '50', 1, '1e-5'), ('0.05', '0.7', 2000, '1e-3'), ('0.002', '20', 1, '1e-9'),
             ('0.6', '3', 30, '1e-6')]
    for qq, ss, T, dd in cases:
        q, s, d = mp.mpf(qq), mp.mpf(ss), mp.mpf(dd)
        rd = [T * rdp(q, s, a) for a in orders]
        for classic in (0, 1):
            print("eps %s %s %d %s %d %s" % (qq, ss, T, dd, classic, mp.nstr(eps(orders, rd, d, classic), 20)))


if __name__ == '__main__':
    main()
