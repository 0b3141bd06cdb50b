//! Typed Candid helpers over the raw byte calls.

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal, decode_args, decode_one, encode_args, encode_one};
use serde::de::DeserializeOwned;

use crate::error::CallError;
use crate::{Devnet, InstallError};

impl Devnet {
    /// An update call with one Candid argument and one Candid result.
    pub fn update<A: CandidType, R: CandidType + DeserializeOwned>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: &A,
    ) -> Result<R, CallError> {
        let bytes = self.update_call(canister, sender, method, encode_one(arg)?)?;
        Ok(decode_one(&bytes)?)
    }

    /// A query with one Candid argument and one Candid result.
    pub fn query<A: CandidType, R: CandidType + DeserializeOwned>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: &A,
    ) -> Result<R, CallError> {
        let bytes = self.query_call(canister, sender, method, encode_one(arg)?)?;
        Ok(decode_one(&bytes)?)
    }

    /// An update call with a tuple of Candid arguments and of results.
    pub fn update_args<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let bytes = self.update_call(canister, sender, method, encode_args(args)?)?;
        Ok(decode_args(&bytes)?)
    }

    /// A query with a tuple of Candid arguments and of results.
    pub fn query_args<A: ArgumentEncoder, R: for<'a> ArgumentDecoder<'a>>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        args: A,
    ) -> Result<R, CallError> {
        let bytes = self.query_call(canister, sender, method, encode_args(args)?)?;
        Ok(decode_args(&bytes)?)
    }

    /// Creates a canister controlled by `controller` and installs `wasm`
    /// with a Candid-encoded init argument.
    pub fn deploy<A: CandidType>(
        &mut self,
        controller: Principal,
        wasm: &[u8],
        init_arg: &A,
    ) -> Result<Principal, InstallError> {
        let arg = encode_one(init_arg).map_err(|e| InstallError::InvalidModule(e.to_string()))?;
        let id = self.create_canister(vec![controller]);
        self.install_canister(id, wasm, arg, controller)?;
        Ok(id)
    }
}
