//! Small deterministic random numbers and the Zipf choice of products.

/// SplitMix64: small, fast, reproducible from `--seed`.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    #[cfg(test)]
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A stream for client `c` that does not overlap the others for any practical run length.
    pub fn for_client(seed: u64, c: usize) -> Rng {
        Rng(seed ^ (c as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n` must be positive).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf over ranks `0..n`: P(k) proportional to 1 / (k + 1)^s. Rank 0 is the hottest product.
/// Exact inverse-CDF sampling over a precomputed table (n <= a few million is cheap).
#[derive(Clone, Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Result<Zipf, String> {
        if n == 0 {
            return Err("zipf: n must be positive".into());
        }
        if !(s.is_finite() && s >= 0.0) {
            return Err(format!("zipf: exponent must be >= 0, got {s}"));
        }
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for k in 0..n {
            acc += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Ok(Zipf { cdf })
    }

    /// Probability of rank `k`.
    #[cfg(test)]
    pub fn p(&self, k: usize) -> f64 {
        match k {
            0 => self.cdf[0],
            _ => self.cdf[k] - self.cdf[k - 1],
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_is_reproducible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..10_000 {
            let x = a.below(13);
            assert!(x < 13);
            assert_eq!(x, b.below(13));
        }
        let u = Rng::new(3).unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn zipf_probabilities_follow_the_law() {
        let z = Zipf::new(100, 1.0).unwrap();
        let h: f64 = (1..=100).map(|k| 1.0 / k as f64).sum();
        assert!((z.p(0) - 1.0 / h).abs() < 1e-12);
        assert!((z.p(9) - 1.0 / (10.0 * h)).abs() < 1e-12);
        let total: f64 = (0..100).map(|k| z.p(k)).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn zipf_samples_match_the_distribution() {
        let z = Zipf::new(1000, 1.1).unwrap();
        let mut rng = Rng::new(42);
        let n = 200_000;
        let mut counts = vec![0u32; 1000];
        for _ in 0..n {
            counts[z.sample(&mut rng)] += 1;
        }
        for k in [0usize, 1, 2, 10] {
            let expected = z.p(k) * n as f64;
            let got = counts[k] as f64;
            // within 5 standard deviations of a binomial count
            let sd = (expected * (1.0 - z.p(k))).sqrt();
            assert!((got - expected).abs() < 5.0 * sd + 1.0, "rank {k}: {got} vs {expected}");
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[2]);
    }

    #[test]
    fn zipf_zero_exponent_is_uniform_and_bad_input_is_refused() {
        let z = Zipf::new(4, 0.0).unwrap();
        for k in 0..4 {
            assert!((z.p(k) - 0.25).abs() < 1e-12);
        }
        assert!(Zipf::new(0, 1.0).is_err());
        assert!(Zipf::new(5, -1.0).is_err());
        assert!(Zipf::new(5, f64::NAN).is_err());
        assert_eq!(Zipf::new(1, 2.0).unwrap().sample(&mut Rng::new(1)), 0);
    }
}
