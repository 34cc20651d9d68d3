"""KartStudio Raceway in KartStudio's engine: the expert driver, the race score, demonstrations and
`bench drive --game raceway`. The game itself and its state channel: kartstudio.emulator.raceway."""
