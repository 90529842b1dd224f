//! The wall clock behind the core's `Clock` port: the product reads time here, never in the core,
//! so every decision in the core takes time as an argument and tests control it.

use time::OffsetDateTime;

use crate::ports::Clock;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
