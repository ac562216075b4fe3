//! Application messages.

use crate::core::error::{from_operation_error, CoreError};
use crate::core::group::{ensure_active, GroupHandle};
use crate::core::message;

impl GroupHandle {
    /// Encrypts an application message with optional authenticated data.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.mutate(|mls, provider, signer| {
            ensure_active(mls)?;
            if mls.pending_proposals().next().is_some() {
                return Err(CoreError::PendingProposals);
            }
            mls.set_aad(aad.to_vec());
            let out = mls
                .create_message(provider, signer, plaintext)
                .map_err(from_operation_error)?;
            message::serialize(&out)
        })
    }
}
