//! [`Logprobs`]: how likely the model found a sampled token, and its most likely
//! alternatives, as OpenAI's `logprobs`/`top_logprobs` report them.
//!
//! They are the model's own distribution, the softmax of the raw logits, before any sampler
//! stage (temperature, top-p, grammar) reshapes it: a grammar-constrained token can have a
//! low log-probability.

use crate::token::Token;

/// A token and its natural-log probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenLogprob {
    /// The token.
    pub token: Token,
    /// `ln p`, at most 0.
    pub logprob: f32,
}

/// The sampled token's log-probability and the most likely tokens at that step.
#[derive(Clone, Debug, PartialEq)]
pub struct Logprobs {
    /// The token that was sampled.
    pub sampled: TokenLogprob,
    /// The most likely tokens, most likely first (as many as asked for, fewer only with a
    /// smaller vocabulary).
    pub top: Vec<TokenLogprob>,
}

impl Logprobs {
    /// From one output's logits (one per vocabulary token), for `sampled`, with the `top`
    /// most likely tokens.
    ///
    /// ```
    /// use ember_llama::{Logprobs, Token};
    ///
    /// let lp = Logprobs::from_logits(&[0.0, 2.0, 1.0], Token(2), 2);
    /// assert_eq!(lp.top.iter().map(|t| t.token).collect::<Vec<_>>(), [Token(1), Token(2)]);
    /// let total: f32 = [0.0f32, 2.0, 1.0].iter().map(|l| l.exp()).sum();
    /// assert!((lp.sampled.logprob - (1.0f32.exp() / total).ln()).abs() < 1e-6);
    /// ```
    pub fn from_logits(logits: &[f32], sampled: Token, top: usize) -> Logprobs {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // Sums in f64: 262k terms in f32 lose the small ones.
        let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
        let log_z = max + sum.ln() as f32;
        let logprob = |l: f32| (l - log_z).min(0.0);
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(top + 1);
        if top > 0 {
            for (i, &l) in logits.iter().enumerate() {
                if best.len() == top && l <= best[top - 1].0 {
                    continue;
                }
                let at = best.partition_point(|&(b, _)| b >= l);
                best.insert(at, (l, i));
                best.truncate(top);
            }
        }
        let sampled_logit = usize::try_from(sampled.0)
            .ok()
            .and_then(|i| logits.get(i))
            .copied()
            .unwrap_or(f32::NEG_INFINITY);
        Logprobs {
            sampled: TokenLogprob {
                token: sampled,
                logprob: logprob(sampled_logit),
            },
            top: best
                .into_iter()
                .map(|(l, i)| TokenLogprob {
                    token: Token(i as i32),
                    logprob: logprob(l),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_the_top_is_ordered() {
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect();
        let all = Logprobs::from_logits(&logits, Token(3), logits.len());
        let total: f64 = all.top.iter().map(|t| f64::from(t.logprob).exp()).sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        assert!(all.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
        let five = Logprobs::from_logits(&logits, Token(3), 5);
        assert_eq!(five.top[..], all.top[..5]);
        assert_eq!(
            five.sampled,
            all.top
                .iter()
                .find(|t| t.token == Token(3))
                .copied()
                .unwrap()
        );
        assert!(Logprobs::from_logits(&logits, Token(3), 0).top.is_empty());
    }
}
