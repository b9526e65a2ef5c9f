//! Key values in their own type, from the row they were read from to the
//! statement that deletes by them: copied as Datums into a memory context
//! the run owns and bound back as typed parameters (an array of the column's
//! type for a set of rows). Nothing goes through text, so no session
//! setting (extra_float_digits, DateStyle, TimeZone, lc_monetary...) can
//! change a value on its way.

use std::ffi::{c_char, CStr};

use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::pg_sys;
use pgrx::spi::{SpiError, SpiHeapTupleData};

/// How values of a type are stored, and its array type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    pub oid: pg_sys::Oid,
    pub array_oid: pg_sys::Oid,
    len: i16,
    byval: bool,
    align: c_char,
}

impl TypeInfo {
    /// `None` when the type has no array type (then its values cannot be
    /// bound as a set; the caller refuses the table).
    pub fn of(oid: pg_sys::Oid) -> Option<TypeInfo> {
        let mut len: i16 = 0;
        let mut byval = false;
        let mut align: c_char = 0;
        // SAFETY: syscache lookups of an existing type; they raise on a
        // missing type, which the catalog read just returned.
        let array_oid = unsafe {
            pg_sys::get_typlenbyvalalign(oid, &mut len, &mut byval, &mut align);
            pg_sys::get_array_type(oid)
        };
        (array_oid != pg_sys::Oid::INVALID).then_some(TypeInfo {
            oid,
            array_oid,
            len,
            byval,
            align,
        })
    }
}

impl TypeInfo {
    /// The array type of this type (arrays are varlena, aligned to `int`
    /// or `double` as their elements need).
    fn array_type(&self) -> TypeInfo {
        let double = b'd' as c_char;
        TypeInfo {
            oid: self.array_oid,
            array_oid: pg_sys::Oid::INVALID,
            len: -1,
            byval: false,
            align: if self.align == double {
                double
            } else {
                b'i' as c_char
            },
        }
    }
}

/// A memory context owned by Rust: deleted on drop.
pub struct OwnedContext(pg_sys::MemoryContext);

impl OwnedContext {
    /// A context under TopMemoryContext: it survives the commits of a
    /// `retention_run` and is freed when the run (or this value) ends.
    pub fn new(name: &'static CStr) -> OwnedContext {
        // SAFETY: creates a child of TopMemoryContext with default sizes;
        // `name` is static, as the context keeps the pointer.
        OwnedContext(unsafe {
            pg_sys::AllocSetContextCreateExtended(
                pg_sys::TopMemoryContext,
                name.as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            )
        })
    }

    /// Frees everything allocated in the context.
    pub fn reset(&self) {
        // SAFETY: the context is alive until drop.
        unsafe { pg_sys::MemoryContextReset(self.0) }
    }

    /// Runs `f` with this context current.
    fn within<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: switches back to the previous context before returning; an
        // error inside `f` is a longjmp whose handler resets the context.
        unsafe {
            let previous = pg_sys::MemoryContextSwitchTo(self.0);
            let out = f();
            pg_sys::MemoryContextSwitchTo(previous);
            out
        }
    }

    /// A copy of `value` (of type `ty`) allocated in this context.
    pub fn copy(&self, value: Option<pg_sys::Datum>, ty: &TypeInfo) -> Option<pg_sys::Datum> {
        let datum = value?;
        if ty.byval {
            return Some(datum);
        }
        self.within(|| {
            // SAFETY: `datum` points to a live value of type `ty` (from a
            // row of the statement just run); the copy is detoasted.
            unsafe {
                Some(match ty.len {
                    -1 => pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(
                        datum.cast_mut_ptr::<pg_sys::varlena>(),
                    )),
                    -2 => {
                        let source = CStr::from_ptr(datum.cast_mut_ptr::<c_char>());
                        let bytes = source.to_bytes_with_nul();
                        let target = pg_sys::palloc(bytes.len()).cast::<u8>();
                        std::ptr::copy_nonoverlapping(bytes.as_ptr(), target, bytes.len());
                        pg_sys::Datum::from(target)
                    }
                    n => {
                        let n = n as usize;
                        let target = pg_sys::palloc(n).cast::<u8>();
                        std::ptr::copy_nonoverlapping(datum.cast_mut_ptr::<u8>(), target, n);
                        pg_sys::Datum::from(target)
                    }
                })
            }
        })
    }

    /// An array of `ty` holding `values` (NULLs kept), allocated here.
    pub fn array(&self, values: &[Option<pg_sys::Datum>], ty: &TypeInfo) -> pg_sys::Datum {
        let mut datums: Vec<pg_sys::Datum> = values
            .iter()
            .map(|v| v.unwrap_or(pg_sys::Datum::from(0)))
            .collect();
        let mut nulls: Vec<bool> = values.iter().map(Option::is_none).collect();
        let mut dims = [values.len() as i32];
        let mut lower_bounds = [1];
        self.within(|| {
            // SAFETY: the arrays are as long as `dims` says; the elements
            // are values of `ty`, copied into the new array.
            unsafe {
                pg_sys::Datum::from(pg_sys::construct_md_array(
                    datums.as_mut_ptr(),
                    nulls.as_mut_ptr(),
                    1,
                    dims.as_mut_ptr(),
                    lower_bounds.as_mut_ptr(),
                    ty.oid,
                    ty.len.into(),
                    ty.byval,
                    ty.align,
                ))
            }
        })
    }
}

impl Drop for OwnedContext {
    fn drop(&mut self) {
        // SAFETY: the context was created by `new` and is deleted once.
        unsafe { pg_sys::MemoryContextDelete(self.0) }
    }
}

/// One value in its own type, stored in an [`OwnedContext`] (which must
/// outlive it).
#[derive(Clone, Copy, Debug)]
pub struct Value {
    pub datum: Option<pg_sys::Datum>,
    pub ty: TypeInfo,
}

impl Value {
    /// Column `ordinal` of `row`, copied into `cx`.
    pub fn read(
        cx: &OwnedContext,
        row: &SpiHeapTupleData<'_>,
        ordinal: usize,
        ty: &TypeInfo,
    ) -> std::result::Result<Value, SpiError> {
        let raw = row.get::<AnyDatum>(ordinal)?;
        Ok(Value {
            datum: cx.copy(raw.map(|d| d.0), ty),
            ty: *ty,
        })
    }

    /// The same value, copied into `cx` (to outlive the context it is in).
    pub fn copied_to(&self, cx: &OwnedContext) -> Value {
        Value {
            datum: cx.copy(self.datum, &self.ty),
            ty: self.ty,
        }
    }

    /// As a parameter of its own type.
    pub fn param<'a>(&self) -> DatumWithOid<'a> {
        match self.datum {
            // SAFETY: the datum is a value of type `ty`, alive in its context.
            Some(d) => unsafe { DatumWithOid::new(d, self.ty.oid) },
            None => DatumWithOid::null_oid(self.ty.oid),
        }
    }

    /// Bitwise the same value (equal values of the types used for times,
    /// whose equal values have one representation each).
    pub fn same_as(&self, other: &Value) -> bool {
        match (self.datum, other.datum) {
            (None, None) => true,
            (Some(a), Some(b)) if self.ty.byval => a == b,
            (Some(a), Some(b)) if self.ty.len > 0 => {
                let n = self.ty.len as usize;
                // SAFETY: both point to `n` bytes of a value of this type.
                unsafe {
                    std::slice::from_raw_parts(a.cast_mut_ptr::<u8>(), n)
                        == std::slice::from_raw_parts(b.cast_mut_ptr::<u8>(), n)
                }
            }
            _ => false,
        }
    }
}

/// A column's value as SPI returns it, whatever its type: read only to be
/// copied by [`OwnedContext::copy`] with the column's [`TypeInfo`].
struct AnyDatum(pg_sys::Datum);

impl FromDatum for AnyDatum {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<AnyDatum> {
        (!is_null).then_some(AnyDatum(datum))
    }
}

impl IntoDatum for AnyDatum {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::ANYOID
    }

    fn is_compatible_with(_: pg_sys::Oid) -> bool {
        true
    }
}

/// Values of one column for a set of rows.
#[derive(Clone, Debug)]
pub struct ValueColumn {
    pub ty: TypeInfo,
    pub values: Vec<Option<pg_sys::Datum>>,
}

impl ValueColumn {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Values `range` as one array of the column's type, built in `cx`.
    pub fn array_value(&self, cx: &OwnedContext, range: std::ops::Range<usize>) -> Value {
        Value {
            datum: Some(cx.array(&self.values[range], &self.ty)),
            ty: self.ty.array_type(),
        }
    }

    /// [`ValueColumn::array_value`] as a parameter.
    pub fn array_param<'a>(
        &self,
        cx: &OwnedContext,
        range: std::ops::Range<usize>,
    ) -> DatumWithOid<'a> {
        self.array_value(cx, range).param()
    }
}
