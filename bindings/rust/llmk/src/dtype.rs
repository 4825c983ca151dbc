//! Element types: [`DType`], and the Rust types that hold elements ([`Element`]): the floats
//! `f32`, [`F16`] and [`Bf16`] ([`FloatElement`]), and the integers `i8`, `u8`, `i32` and `i64`
//! (ids, positions, slots).

use std::fmt;

use crate::sys;

/// The element type of a tensor view: the values of `llmk_dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum DType {
    /// IEEE binary32.
    F32 = sys::llmk_dtype::LLMK_DTYPE_F32.0,
    /// IEEE binary16.
    F16 = sys::llmk_dtype::LLMK_DTYPE_F16.0,
    /// bfloat16: the upper 16 bits of a binary32.
    Bf16 = sys::llmk_dtype::LLMK_DTYPE_BF16.0,
    /// Signed 8-bit integers.
    I8 = sys::llmk_dtype::LLMK_DTYPE_I8.0,
    /// Unsigned 8-bit integers.
    U8 = sys::llmk_dtype::LLMK_DTYPE_U8.0,
    /// Signed 32-bit integers: token ids, positions, slots.
    I32 = sys::llmk_dtype::LLMK_DTYPE_I32.0,
    /// Signed 4-bit integers packed two to a byte, element 2i in the low nibble of byte i.
    I4 = sys::llmk_dtype::LLMK_DTYPE_I4.0,
    /// Signed 64-bit integers: token ids, positions, slots.
    I64 = sys::llmk_dtype::LLMK_DTYPE_I64.0,
}

impl DType {
    /// The `llmk_dtype` value.
    pub fn to_raw(self) -> sys::llmk_dtype {
        sys::llmk_dtype(self as u32)
    }

    /// Bits per element (4 for [`DType::I4`]), as the library counts them.
    pub fn bits(self) -> u32 {
        // SAFETY: a pure function of its argument.
        let bits = unsafe { sys::llmk_dtype_bits(self.to_raw()) };
        // Never negative: it is 0 only for a value that is not a dtype, which no DType is.
        bits as u32
    }
}

impl fmt::Display for DType {
    /// The name the library's messages use: "f32", "bf16", ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::I8 => "i8",
            Self::U8 => "u8",
            Self::I32 => "i32",
            Self::I4 => "i4",
            Self::I64 => "i64",
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for super::F16 {}
    impl Sealed for super::Bf16 {}
    impl Sealed for i8 {}
    impl Sealed for u8 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
}

/// A Rust type laid out exactly as the elements of one [`DType`], so that slices of it can back
/// tensor views. Sealed: `f32`, [`F16`], [`Bf16`], `i8`, `u8`, `i32` and `i64` ([`DType::I4`]
/// packs two elements to a byte and has no Rust type).
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The dtype of views over this type.
    const DTYPE: DType;
}

/// The floating-point [`Element`]s, which the ops compute on: `f32`, [`F16`] and [`Bf16`].
pub trait FloatElement: Element {
    /// The nearest value to `value`, ties to even (exact for `f32`).
    fn from_f32(value: f32) -> Self;

    /// The value as an `f32`, always exact.
    fn to_f32(self) -> f32;
}

macro_rules! integer_element {
    ($($type:ty => $dtype:ident),*) => {
        $(impl Element for $type {
            const DTYPE: DType = DType::$dtype;
        })*
    };
}

integer_element!(i8 => I8, u8 => U8, i32 => I32, i64 => I64);

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}

impl FloatElement for f32 {
    fn from_f32(value: f32) -> Self {
        value
    }

    fn to_f32(self) -> f32 {
        self
    }
}

/// An IEEE binary16 value, stored as its bit pattern.
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub struct F16(u16);

impl F16 {
    /// The value with these bits.
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits)
    }

    /// The bit pattern.
    pub const fn to_bits(self) -> u16 {
        self.0
    }

    /// The nearest binary16 value, ties to even: values from 65520 on become infinity, tiny ones
    /// subnormals or zero, and NaN stays NaN (quiet, keeping the sign and the top of the payload).
    pub fn from_f32(value: f32) -> Self {
        let bits = value.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let abs = bits & 0x7fff_ffff;
        let magnitude = if abs > 0x7f80_0000 {
            0x7e00 | ((abs >> 13) & 0x01ff) as u16
        } else if abs >= 0x4780_0000 {
            // 2^16 and beyond (infinity included): past the largest value, even once rounded.
            0x7c00
        } else if abs >= 0x3880_0000 {
            // A normal result (>= 2^-14): rebias the exponent from 127 to 15 and round the
            // mantissa from 23 to 10 bits, ties to even. A carry out of the mantissa steps the
            // exponent up, to infinity from 65520 on.
            let rebiased = abs - (112 << 23);
            ((rebiased + 0x0fff + ((rebiased >> 13) & 1)) >> 13) as u16
        } else {
            // A subnormal result or zero: a whole number of 2^-24 (1024 of them is the smallest
            // normal, which these bits also encode). The scaling is exact.
            (f32::from_bits(abs) * 16_777_216.0).round_ties_even() as u16
        };
        Self(sign | magnitude)
    }

    /// The value as an `f32` (exact).
    pub fn to_f32(self) -> f32 {
        let sign = u32::from(self.0 & 0x8000) << 16;
        let exponent = u32::from(self.0 >> 10) & 0x1f;
        let mantissa = u32::from(self.0) & 0x03ff;
        let magnitude = match exponent {
            0 => (f32::from(self.0 & 0x03ff) / 16_777_216.0).to_bits(),
            0x1f => 0x7f80_0000 | (mantissa << 13),
            _ => ((exponent + 112) << 23) | (mantissa << 13),
        };
        f32::from_bits(sign | magnitude)
    }
}

/// A bfloat16 value (the upper half of a binary32), stored as its bit pattern.
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub struct Bf16(u16);

impl Bf16 {
    /// The value with these bits.
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits)
    }

    /// The bit pattern.
    pub const fn to_bits(self) -> u16 {
        self.0
    }

    /// The nearest bfloat16 value, ties to even: values beyond the largest become infinity, and
    /// NaN stays NaN (quiet, keeping the sign and the top of the payload).
    pub fn from_f32(value: f32) -> Self {
        let bits = value.to_bits();
        if value.is_nan() {
            return Self((bits >> 16) as u16 | 0x0040);
        }
        let rounding = 0x7fff + ((bits >> 16) & 1);
        Self(((bits + rounding) >> 16) as u16)
    }

    /// The value as an `f32` (exact).
    pub fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
}

macro_rules! half_element {
    ($type:ident, $dtype:ident) => {
        impl Element for $type {
            const DTYPE: DType = DType::$dtype;
        }

        impl FloatElement for $type {
            fn from_f32(value: f32) -> Self {
                Self::from_f32(value)
            }

            fn to_f32(self) -> f32 {
                Self::to_f32(self)
            }
        }

        impl From<$type> for f32 {
            fn from(value: $type) -> f32 {
                value.to_f32()
            }
        }

        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($type), self.to_f32())
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.to_f32(), f)
            }
        }
    };
}

half_element!(F16, F16);
half_element!(Bf16, Bf16);

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `from_f32` of a 16-bit format exhaustively against its `to_f32`: every value comes
    /// back to its own bits, and the midpoint between neighbours (exact in f32) goes to the even
    /// one while anything off the midpoint goes to the nearer one. `largest` is the largest
    /// finite bit pattern.
    fn check_rounding(from_f32: fn(f32) -> u16, to_f32: fn(u16) -> f32, largest: u16) {
        for bits in 0..=u16::MAX {
            let value = to_f32(bits);
            if value.is_nan() {
                assert!(to_f32(from_f32(value)).is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(from_f32(value), bits, "{bits:#06x} does not round-trip");
            }
        }
        for sign in [0, 0x8000] {
            for low in 0..largest {
                let (a, b) = (sign | low, sign | (low + 1));
                let midpoint = ((f64::from(to_f32(a)) + f64::from(to_f32(b))) / 2.0) as f32;
                let even = if a % 2 == 0 { a } else { b };
                assert_eq!(
                    from_f32(midpoint),
                    even,
                    "tie between {a:#06x} and {b:#06x}"
                );
                assert_eq!(
                    from_f32(midpoint.next_down()),
                    if sign == 0 { a } else { b }
                );
                assert_eq!(from_f32(midpoint.next_up()), if sign == 0 { b } else { a });
            }
        }
    }

    #[test]
    fn f16_rounds_to_nearest_even() {
        check_rounding(
            |v| F16::from_f32(v).to_bits(),
            |b| F16::from_bits(b).to_f32(),
            0x7bff,
        );
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        check_rounding(
            |v| Bf16::from_f32(v).to_bits(),
            |b| Bf16::from_bits(b).to_f32(),
            0x7f7f,
        );
    }

    #[test]
    fn f16_edges() {
        let bits = |v: f32| F16::from_f32(v).to_bits();
        assert_eq!(bits(1.0), 0x3c00);
        assert_eq!(bits(-2.0), 0xc000);
        assert_eq!(bits(65504.0), 0x7bff);
        assert_eq!(bits(65520f32.next_down()), 0x7bff);
        assert_eq!(bits(65520.0), 0x7c00);
        assert_eq!(bits(f32::MAX), 0x7c00);
        assert_eq!(bits(f32::NEG_INFINITY), 0xfc00);
        assert_eq!(bits(2f32.powi(-24)), 0x0001);
        assert_eq!(bits(2f32.powi(-25)), 0x0000);
        assert_eq!(bits(1.5 * 2f32.powi(-25)), 0x0001);
        assert_eq!(bits(-f32::from_bits(1)), 0x8000);
        assert_eq!(bits(f32::NAN), 0x7e00);
        assert_eq!(F16::from_bits(0x0001).to_f32(), 2f32.powi(-24));
        assert_eq!(F16::from_bits(0x8000).to_f32().to_bits(), 0x8000_0000);
    }

    #[test]
    fn bf16_edges() {
        let bits = |v: f32| Bf16::from_f32(v).to_bits();
        assert_eq!(bits(1.0), 0x3f80);
        assert_eq!(bits(-2.0), 0xc000);
        assert_eq!(bits(f32::MAX), 0x7f80);
        assert_eq!(bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(bits(f32::NAN), 0x7fc0);
        assert_eq!(bits(f32::from_bits(0xff80_0001)), 0xffc0);
        assert_eq!(Bf16::from_bits(0x3f80).to_f32(), 1.0);
    }

    #[test]
    fn elements_have_the_size_of_their_dtype() {
        fn check<T: Element>() {
            let bits = 8 * std::mem::size_of::<T>() as u32;
            assert_eq!(bits, T::DTYPE.bits(), "{}", T::DTYPE);
        }
        check::<f32>();
        check::<F16>();
        check::<Bf16>();
        check::<i8>();
        check::<u8>();
        check::<i32>();
        check::<i64>();
    }

    #[test]
    fn dtype_bits_come_from_the_library() {
        assert_eq!(DType::F32.bits(), 32);
        assert_eq!(DType::Bf16.bits(), 16);
        assert_eq!(DType::I4.bits(), 4);
        assert_eq!(DType::I64.bits(), 64);
        assert_eq!(DType::Bf16.to_string(), "bf16");
    }
}
