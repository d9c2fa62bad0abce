"""Accuracy on the operator's own data: LFW verification and open-set 1:N identification."""
