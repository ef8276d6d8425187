// Simulator owns the fleet simulator. (Under construction.)
