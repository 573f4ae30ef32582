"""Fine-tuning Puppet-Master: cached training examples, the EDM objective, the accelerate trainer."""
