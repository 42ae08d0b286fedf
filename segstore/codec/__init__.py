"""The codec contract (ABCs), file framing and the name registry."""
