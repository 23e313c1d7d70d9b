//! AdamW's settings and the state it carries from step to step. The update itself is the
//! backend's `adamw_step` (a kernel on the GPU); [`crate::optim`] decides when it runs.
//! Both the backend and the optimizer read these types, so they sit apart from either.

/// AdamW's settings (the learning rate is `TrainOptions::lr`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

/// makemore.py's learning rate for AdamW.
pub const ADAMW_DEFAULT_LR: f32 = 5e-4;

impl Default for AdamW {
    /// makemore.py: `torch.optim.AdamW(lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)`.
    fn default() -> AdamW {
        AdamW {
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
        }
    }
}

/// AdamW's moment estimates and step count.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Steps taken so far (the next step is `t + 1`).
    pub t: u32,
}

impl AdamState {
    pub fn new(num_weights: usize) -> AdamState {
        AdamState {
            m: vec![0.0; num_weights],
            v: vec![0.0; num_weights],
            t: 0,
        }
    }

    /// The bias corrections `1 - beta1^t` and `1 - beta2^t` of step `t`.
    pub fn bias_corrections(t: u32, adamw: &AdamW) -> (f32, f32) {
        let t = t as i32;
        (
            (1.0 - (adamw.beta1 as f64).powi(t)) as f32,
            (1.0 - (adamw.beta2 as f64).powi(t)) as f32,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makemore_defaults_and_bias_corrections() {
        let a = AdamW::default();
        assert_eq!(
            (a.weight_decay, a.beta1, a.beta2, a.eps),
            (0.01, 0.9, 0.99, 1e-8)
        );
        let (bc1, bc2) = AdamState::bias_corrections(1, &a);
        assert!((bc1 - 0.1).abs() < 1e-7 && (bc2 - 0.01).abs() < 1e-7);
    }
}
