//! Small helpers for building GStreamer elements with errors, not panics.

use super::error::{MediaError, Result};
use gstreamer as gst;
use gstreamer::prelude::*;

/// Makes an element, with an error that names it.
pub fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement(factory.to_string()))
}

/// Parses caps from a string.
pub fn parse_caps(s: &str) -> Result<gst::Caps> {
    s.parse::<gst::Caps>().map_err(|_| MediaError::Property {
        element: "capsfilter".into(),
        message: format!("bad caps `{s}`"),
    })
}

/// Sets a property from a string, with an error (not a panic) for an unknown property or value.
pub fn set(el: &impl IsA<gst::glib::Object>, name: &str, value: &str) -> Result<()> {
    let element = el.type_().to_string();
    let pspec = el.find_property(name).ok_or_else(|| MediaError::Property {
        element: element.clone(),
        message: format!("has no property `{name}`"),
    })?;
    let v = gst::glib::Value::deserialize_with_pspec(value, &pspec).map_err(|_| {
        MediaError::Property {
            element,
            message: format!("`{value}` is not a valid `{name}`"),
        }
    })?;
    el.set_property_from_value(name, &v);
    Ok(())
}

/// Adds `chain` to `bin` and links it in order.
pub fn add_chain(bin: &impl IsA<gst::Bin>, chain: &[gst::Element], what: &str) -> Result<()> {
    bin.add_many(chain).map_err(|e| MediaError::link(what, e))?;
    gst::Element::link_many(chain).map_err(|e| MediaError::link(what, e))
}

/// A leaky queue: when whatever is behind it stalls, it drops its oldest buffers instead of
/// blocking the thread that feeds it.
pub fn leaky_queue(max_buffers: u32) -> Result<gst::Element> {
    let q = make("queue")?;
    set(&q, "leaky", "downstream")?;
    set(&q, "max-size-buffers", &max_buffers.to_string())?;
    set(&q, "max-size-bytes", "0")?;
    set(&q, "max-size-time", "0")?;
    Ok(q)
}
