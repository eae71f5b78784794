"""symaffect.data"""
