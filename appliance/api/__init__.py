"""The NHS Notify Supplier API: the async client (httpx, its transport the seam), signed-JWT
auth, the shared rate limiter, and the limits on what the API may send back."""
