"""mupen64plus: launcher, window pinning, capture, ROM check, plugin client, test ROM, menu macro."""
