//! Subrequests on the runtime's own `Request` and `Response` objects: to an airport's Durable
//! Object, to the static assets and to the network (a person's look-up object is called over
//! RPC instead, `people::person_lookup`). `worker`'s wrappers
//! copy every field both ways and bring their conversions into the Wasm; these are the few
//! calls the service makes.

use wasm_bindgen::JsCast;
use worker::js_sys::futures::JsFuture;
use worker::{AbortSignal, Error, Fetcher, Headers, Result, Stub};

/// `GET https://object/{path}` with `headers` to a Durable Object, its response as it is.
pub async fn ask_object(stub: Stub, path: &str, headers: &Headers) -> Result<web_sys::Response> {
    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    init.set_headers(headers.as_ref());
    let request =
        web_sys::Request::new_with_str_and_init(&format!("https://object/{path}"), &init)?;
    let stub: worker::worker_sys::DurableObject = stub.into_rpc();
    response(stub.fetch_with_request(&request)?).await
}

/// The static asset at `path`, asked with `like`'s method and headers (so that conditional
/// requests work), its response as it is.
pub async fn ask_assets(
    assets: Fetcher,
    path: &str,
    like: &web_sys::Request,
) -> Result<web_sys::Response> {
    let init = web_sys::RequestInit::new();
    init.set_method(&like.method());
    init.set_headers(like.headers().as_ref());
    let request =
        web_sys::Request::new_with_str_and_init(&format!("https://assets/{path}"), &init)?;
    let assets: worker::worker_sys::Fetcher = assets.into_rpc();
    response(assets.fetch(&request)?).await
}

/// `GET url` from the network, abandoned when `signal` aborts.
pub async fn get(url: &str, signal: &AbortSignal) -> Result<web_sys::Response> {
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(signal));
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    response(global.fetch_with_str_and_init(url, &init)).await
}

/// A response's body as text.
pub async fn text(response: &web_sys::Response) -> Result<String> {
    JsFuture::from(response.text()?)
        .await?
        .as_string()
        .ok_or_else(|| Error::from("the body is not text"))
}

async fn response(promise: js_sys::Promise) -> Result<web_sys::Response> {
    Ok(JsFuture::from(promise).await?.dyn_into()?)
}
