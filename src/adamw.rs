//! AdamW's settings; the update is the backend's `adamw_update`, its moments on the device.

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

impl AdamW {
    /// The bias corrections `1 - beta1^t` and `1 - beta2^t` of step `t`.
    pub fn bias_corrections(&self, t: u32) -> (f32, f32) {
        let correction = |beta: f32| (1.0 - (beta as f64).powi(t as i32)) as f32;
        (correction(self.beta1), correction(self.beta2))
    }
}
