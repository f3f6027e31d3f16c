"""The virtual wearable: ground-truth physiology models and a device that
speaks the real firmware protocol over every transport."""
