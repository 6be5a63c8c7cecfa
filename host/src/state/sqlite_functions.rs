//! SQLite's `instr` and `replace`, replaced on every guest connection by
//! linear-time versions. The built-ins compare at every position —
//! quadratic in their arguments — and one function call runs to its end
//! whatever the statement's deadline (SQLite checks that only between the
//! steps of its program), so a guest could hold a CPU far past its
//! timeout with one call. Results are SQLite's, but for a REAL argument,
//! which they refuse (`CAST` it to `TEXT` first: SQLite's own text for a
//! number is what it should search).

use memchr::memmem;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Error};
use std::borrow::Cow;

/// Installs both on `connection`; `replace` makes at most `max_bytes`.
pub(super) fn install(connection: &Connection, max_bytes: usize) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    connection.create_scalar_function("instr", 2, flags, instr)?;
    connection.create_scalar_function("replace", 3, flags, move |context: &mut Context<'_>| {
        replace(context, max_bytes)
    })
}

/// Argument `index` as bytes, and whether it is a blob; `None` for NULL.
fn argument<'a>(
    context: &'a Context<'_>,
    index: usize,
) -> rusqlite::Result<Option<(Cow<'a, [u8]>, bool)>> {
    Ok(match context.get_raw(index) {
        ValueRef::Null => None,
        ValueRef::Text(text) => Some((Cow::Borrowed(text), false)),
        ValueRef::Blob(blob) => Some((Cow::Borrowed(blob), true)),
        ValueRef::Integer(n) => Some((Cow::Owned(n.to_string().into_bytes()), false)),
        ValueRef::Real(_) => {
            return Err(Error::UserFunctionError(
                "wisp's instr and replace take text, blobs and integers: CAST a REAL to TEXT first"
                    .into(),
            ));
        }
    })
}

/// `instr(X, Y)`: where `Y` first occurs in `X`, from 1 (0: nowhere), in
/// bytes when both are blobs, else in characters; NULL if either is.
fn instr(context: &mut Context<'_>) -> rusqlite::Result<Option<i64>> {
    let (Some((haystack, blob)), Some((needle, needle_blob))) =
        (argument(context, 0)?, argument(context, 1)?)
    else {
        return Ok(None);
    };
    let Some(at) = memmem::find(&haystack, &needle) else {
        return Ok(Some(0));
    };
    let before = if blob && needle_blob {
        at
    } else {
        // Characters: every byte that does not continue a UTF-8 sequence.
        haystack[..at].iter().filter(|&&b| b & 0xC0 != 0x80).count()
    };
    Ok(Some(
        i64::try_from(before).unwrap_or(i64::MAX).saturating_add(1),
    ))
}

/// `replace(X, Y, Z)`: `X` with every `Y` in it made `Z`, as text; `X`
/// itself when `Y` is empty; NULL if any is.
fn replace(context: &mut Context<'_>, max_bytes: usize) -> rusqlite::Result<Option<Value>> {
    let (Some((text, _)), Some((from, _)), Some((to, _))) = (
        argument(context, 0)?,
        argument(context, 1)?,
        argument(context, 2)?,
    ) else {
        return Ok(None);
    };
    if from.is_empty() {
        return Ok(Some(context.get::<Value>(0)?));
    }
    let mut out = Vec::with_capacity(text.len().min(max_bytes));
    let mut rest = 0;
    for at in memmem::find_iter(&text, &from[..]) {
        if at < rest {
            continue;
        }
        out.extend_from_slice(&text[rest..at]);
        out.extend_from_slice(&to);
        rest = at + from.len();
        if out.len() > max_bytes {
            return Err(Error::UserFunctionError("string or blob too big".into()));
        }
    }
    out.extend_from_slice(&text[rest..]);
    if out.len() > max_bytes {
        return Err(Error::UserFunctionError("string or blob too big".into()));
    }
    Ok(Some(match String::from_utf8(out) {
        Ok(text) => Value::Text(text),
        Err(bytes) => Value::Blob(bytes.into_bytes()),
    }))
}
